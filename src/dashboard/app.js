// The API Tokens page: signing in and out, the token list and what can be done to a
// token. It talks to the management API only (api.js, which keeps the credential in
// memory only) and renders every value as text (never as HTML).
import {
  $, PAGE_SIZE, action, api, button, call, config, configure, credential, date, onSignedOut,
  report, setCredential, showError, text,
} from "./api.js";
import { loadLeaked } from "./leaked.js";
import { describeLimits, fillLimits, limitsOf, readLimits } from "./limits.js";
import { loadTenantUsage, showUsage } from "./usage.js";
import { loadWebhooks } from "./webhooks.js";

// `starting_after` of every page shown so far, for "Previous page".
let cursors = [null];
let lastId = null;

// ----- signing in and out -----------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  showError("");
  const key = $("api-key").value.trim();
  if (!key) return;
  try {
    if (config.login) {
      const answer = await api("POST", config.login, { api_key: key }, null);
      setCredential(answer.access_token);
    } else {
      setCredential(key);
    }
    $("api-key").value = "";
    await loadPage(null, true);
    $("sign-in").hidden = true;
    $("sign-out").hidden = false;
    $("tokens").hidden = false;
    $("new-token").focus();
  } catch (error) {
    setCredential(null);
    showError(error.message);
    return;
  }
  loadLeaked().catch((error) => report(error));
  loadTenantUsage().catch((error) => report(error));
  loadWebhooks().catch((error) => report(error));
}

/// Sign out, clicked: the page forgets the token at once, and ends its session on
/// the server too (login hands the same token out again while it is valid, so
/// forgetting it here alone would not end it).
function signOutClicked() {
  const ending = credential;
  signOut();
  if (config.logout && ending) {
    // Already over (401) or unreachable: nothing more to do either way.
    api("POST", config.logout, undefined, ending).catch(() => {});
  }
}

function signOut() {
  setCredential(null);
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  cursors = [null];
  $("token-rows").replaceChildren();
  $("activity-rows").replaceChildren();
  closeSecret();
  $("tokens").hidden = true;
  $("activity").hidden = true;
  $("leaked-rows").replaceChildren();
  $("leaked").hidden = true;
  $("usage-body").replaceChildren();
  $("usage").hidden = true;
  $("tenant-usage-body").replaceChildren();
  $("tenant-usage").hidden = true;
  $("webhook-rows").replaceChildren();
  $("delivery-rows").replaceChildren();
  $("webhooks").hidden = true;
  $("sessions-rows").replaceChildren();
  $("sessions").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  showError("");
  $("api-key").focus();
}

// ----- the token list ---------------------------------------------------------------

async function loadPage(after, first = false) {
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (after) query.set("starting_after", String(after));
  const page = await (first ? api : call)("GET", `/tokens?${query}`);
  renderTokens(page.data);
  lastId = page.data.length ? page.data[page.data.length - 1].id : null;
  $("next-page").disabled = !page.has_more;
  $("previous-page").disabled = cursors.length <= 1;
}

function renderTokens(tokens) {
  const rows = tokens.map((token) => {
    const row = document.createElement("tr");
    row.dataset.id = String(token.id);
    const name = document.createElement("td");
    name.append(text("span", token.name, "name"));
    if (token.expired) name.append(" ", text("span", "Expired", "badge expired"));
    const scopes = document.createElement("td");
    for (const scope of token.scopes) scopes.append(text("span", scope, "badge scope"), " ");
    const limits = document.createElement("td");
    limits.className = "limits";
    for (const line of describeLimits(token)) limits.append(text("div", line));
    const actions = document.createElement("td");
    actions.className = "actions";
    if (config.activity) {
      actions.append(button("Usage", action(() => showUsage(token)), "quiet"));
      actions.append(button("Activity", action(() => showActivity(token)), "quiet"));
    }
    if (config.sessions) {
      actions.append(button("Sessions", action(() => showSessions(token)), "quiet"));
    }
    actions.append(
      button("Edit", () => openEdit(token)),
      button("Rotate", action(() => rotate(token))),
      button("Revoke", () => confirmRevoke(token, row), "danger"),
    );
    row.append(
      name,
      text("td", `${token.prefix}…`, "prefix"),
      scopes,
      limits,
      text("td", token.owner || "—"),
      text("td", date(token.created_at)),
      text("td", token.expires_at ? date(token.expires_at) : "Never"),
      text("td", token.last_used_at ? date(token.last_used_at) : "Never used"),
      actions,
    );
    return row;
  });
  $("token-rows").replaceChildren(...rows);
  $("empty").hidden = tokens.length > 0;
}

async function reload() {
  try {
    await loadPage(cursors[cursors.length - 1]);
    await loadLeaked();
  } catch (error) {
    report(error);
  }
}

// ----- a new token, shown once --------------------------------------------------------

function openCreate() {
  showError("", $("create-error"));
  $("create-form").reset();
  fillLimits("create", null);
  $("create-dialog").showModal();
  $("token-name").focus();
}

function expiryFields() {
  const choice = $("create-form").elements.expiry.value;
  if (choice === "never") return { never_expires: true };
  if (choice === "date") {
    const day = $("expiry-date").value;
    if (!day) throw new Error("Choose the expiry date.");
    return { expires_at: `${day}T00:00:00Z` };
  }
  return { expires_in_days: Number(choice) };
}

async function create(event) {
  event.preventDefault();
  showError("", $("create-error"));
  const scopes = checkedScopes($("scope-choices"));
  try {
    const body = {
      name: $("token-name").value.trim(),
      scopes,
      ...expiryFields(),
      ...readLimits("create"),
    };
    const issued = await call("POST", "/tokens", body);
    $("create-dialog").close();
    showSecret(issued.token);
    await reload();
  } catch (error) {
    report(error, $("create-error"));
  }
}

function showSecret(token) {
  $("secret-value").value = token;
  $("copied").textContent = "";
  $("secret").hidden = false;
  $("secret-value").focus();
  $("secret-value").select();
}

/// Closing the display removes the token from the page.
function closeSecret() {
  $("secret-value").value = "";
  $("copied").textContent = "";
  $("secret").hidden = true;
}

async function copySecret() {
  const value = $("secret-value").value;
  try {
    await navigator.clipboard.writeText(value);
    $("copied").textContent = "Copied.";
  } catch (_) {
    // No clipboard API (a page served over plain HTTP): select it for Ctrl+C.
    $("secret-value").select();
    $("copied").textContent = "Press Ctrl+C (⌘C) to copy the selected token.";
  }
}

// ----- edit: name and scopes -----------------------------------------------------------

let editing = null;

/// The dialog starts from the token as listed; scopes it holds that the page does not
/// offer (`*`, an undeclared one) are listed too, so that saving keeps them.
function openEdit(token) {
  editing = token;
  showError("", $("edit-error"));
  $("edit-name").value = token.name;
  const offered = [...new Set([...config.scopes, ...token.scopes])];
  fillScopeChoices($("edit-scopes"), offered, token.scopes);
  fillLimits("edit", token);
  $("edit-dialog").showModal();
  $("edit-name").focus();
}

/// Sends only what changed; nothing changed closes the dialog without a call.
async function saveEdit(event) {
  event.preventDefault();
  showError("", $("edit-error"));
  const token = editing;
  const body = {};
  const name = $("edit-name").value.trim();
  if (name !== token.name) body.name = name;
  const scopes = checkedScopes($("edit-scopes"));
  const same =
    scopes.length === token.scopes.length && scopes.every((s) => token.scopes.includes(s));
  if (!same) body.scopes = scopes;
  try {
    // Only the limits that changed: a balance sent again would count from now.
    const limits = readLimits("edit");
    const before = limitsOf(token);
    for (const field of Object.keys(limits)) {
      if (JSON.stringify(limits[field]) !== JSON.stringify(before[field])) {
        body[field] = limits[field];
      }
    }
    if (Object.keys(body).length > 0) await call("PATCH", `/tokens/${token.id}`, body);
    $("edit-dialog").close();
    editing = null;
    await reload();
  } catch (error) {
    report(error, $("edit-error"));
  }
}

// ----- revoke, rotate, activity ---------------------------------------------------------

function confirmRevoke(token, row) {
  const dialog = $("confirm-dialog");
  $("confirm-text").textContent =
    `“${token.name}” (${token.prefix}…) stops working at once, on every server.`;
  dialog.returnValue = "";
  dialog.onclose = async () => {
    if (dialog.returnValue !== "revoke") return;
    try {
      await call("DELETE", `/tokens/${token.id}`);
      row.remove();
      $("empty").hidden = $("token-rows").children.length > 0;
      showError("");
    } catch (error) {
      report(error);
    }
  };
  dialog.showModal();
  $("confirm-revoke").focus();
}

async function rotate(token) {
  const issued = await call("POST", `/tokens/${token.id}/rotate`, {});
  showSecret(issued.token);
  await reload();
}

/// Shows the panel `name` (`activity`, `sessions`) below the tokens, titled `title`,
/// with `rows`.
function showPanel(name, title, rows) {
  $(`${name}-title`).textContent = title;
  $(`${name}-rows`).replaceChildren(...rows);
  $(`${name}-empty`).hidden = rows.length > 0;
  $(name).hidden = false;
  $(`close-${name}`).focus();
}

async function showActivity(token) {
  const page = await call("GET", `/tokens/${token.id}/activity?limit=${PAGE_SIZE}`);
  const rows = page.data.map((entry) => {
    const row = document.createElement("tr");
    if (["revoked", "expired", "leaked"].includes(entry.outcome)) row.className = "alarm";
    const client = document.createElement("td");
    client.append(entry.client_ip || "—");
    if (entry.new_ip) client.append(" ", text("span", "new IP", "badge new-ip"));
    row.append(
      text("td", date(entry.at)),
      text("td", `${entry.method} ${entry.route}`),
      text("td", String(entry.status)),
      text("td", entry.outcome.replace("_", " "), `badge outcome ${entry.outcome}`),
      client,
    );
    return row;
  });
  showPanel("activity", `Activity of “${token.name}”`, rows);
}

/// A key's live sessions, each with "End session".
async function showSessions(token) {
  const list = await call("GET", `/tokens/${token.id}/sessions`);
  const rows = list.data.map((session) => {
    const row = document.createElement("tr");
    row.dataset.id = String(session.id);
    const actions = document.createElement("td");
    actions.className = "actions";
    actions.append(button("End session", action(() => endSession(session, row)), "danger"));
    row.append(
      text("td", session.session_id),
      text("td", date(session.issued_at)),
      text("td", date(session.expires_at)),
      actions,
    );
    return row;
  });
  showPanel("sessions", `Sessions of “${token.name}”`, rows);
}

async function endSession(session, row) {
  await call("DELETE", `/sessions/${session.id}`);
  row.remove();
  $("sessions-empty").hidden = $("sessions-rows").children.length > 0;
  showError("");
}

// ----- start ------------------------------------------------------------------------

/// One labelled checkbox per scope in `fieldset` (after its legend), `checked` ticked.
function fillScopeChoices(fieldset, scopes, checked = []) {
  const labels = scopes.map((scope) => {
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "checkbox";
    input.name = "scope";
    input.value = scope;
    input.checked = checked.includes(scope);
    label.append(input, ` ${scope}`);
    return label;
  });
  fieldset.replaceChildren(fieldset.querySelector("legend"), ...labels);
}

function checkedScopes(fieldset) {
  return [...fieldset.querySelectorAll("input:checked")].map((input) => input.value);
}

async function start() {
  try {
    const base = document.documentElement.dataset.base || "";
    const response = await fetch(`${base}/config.json`, { cache: "no-store" });
    configure(await response.json());
  } catch (_) {
    showError("The page's configuration could not be loaded.");
    return;
  }
  onSignedOut(signOut);
  fillScopeChoices($("scope-choices"), config.scopes);
  $("sign-in").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOutClicked);
  $("new-token").addEventListener("click", openCreate);
  $("cancel-create").addEventListener("click", () => $("create-dialog").close());
  $("create-form").addEventListener("submit", create);
  $("expiry-date").addEventListener("input", () => {
    $("create-form").elements.expiry.value = "date";
  });
  $("edit-form").addEventListener("submit", saveEdit);
  $("cancel-edit").addEventListener("click", () => $("edit-dialog").close());
  $("cancel-revoke").addEventListener("click", () => $("confirm-dialog").close("cancel"));
  $("confirm-revoke").addEventListener("click", () => $("confirm-dialog").close("revoke"));
  $("copy-secret").addEventListener("click", copySecret);
  $("close-secret").addEventListener("click", closeSecret);
  $("close-activity").addEventListener("click", () => {
    $("activity").hidden = true;
  });
  $("close-usage").addEventListener("click", () => {
    $("usage").hidden = true;
  });
  $("close-sessions").addEventListener("click", () => {
    $("sessions").hidden = true;
  });
  $("next-page").addEventListener("click", () => {
    if (lastId === null) return;
    cursors.push(lastId);
    reload();
  });
  $("previous-page").addEventListener("click", () => {
    if (cursors.length > 1) cursors.pop();
    reload();
  });
  document.body.dataset.ready = "true";
  $("api-key").focus();
}

start();
