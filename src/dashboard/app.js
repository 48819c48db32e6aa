// The API Tokens page: talks to the management API only, keeps the credential in this
// script's memory only, and renders every value as text (never as HTML).
"use strict";

(() => {
  const PAGE_SIZE = 20;
  const $ = (id) => document.getElementById(id);

  let config = null;
  // The credential the API calls carry: an access token from POST /auth/login, or the
  // key itself when the login route is not mounted. Memory only.
  let credential = null;
  // `starting_after` of every page shown so far, for "Previous page".
  let cursors = [null];
  let lastId = null;

  /// An API answer that was not a success, with the message the API gave.
  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  /// The message of an error body, whatever the configured style: Laravel
  /// `{"message"}`, DRF `{"detail"}` or `{"field": ["…"]}`, or the envelope's
  /// `{"error": {"message"}}`.
  function messageOf(body, status) {
    if (body && typeof body === "object") {
      if (typeof body.message === "string") return body.message;
      if (typeof body.detail === "string") return body.detail;
      if (body.error && typeof body.error.message === "string") return body.error.message;
      for (const value of Object.values(body)) {
        if (Array.isArray(value) && typeof value[0] === "string") return value[0];
      }
    }
    return `The server answered ${status}.`;
  }

  async function api(method, path, body, token = credential) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(config.api + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
      });
    } catch (_) {
      throw new ApiError(0, "The server cannot be reached.");
    }
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch (_) {
      json = null;
    }
    if (!response.ok) throw new ApiError(response.status, messageOf(json, response.status));
    return json;
  }

  function showError(message, where = $("error")) {
    where.textContent = message;
    where.hidden = !message;
  }

  /// Shows a failed call's message, unless it signed the page out (which said why).
  function report(error, where) {
    if (error.status !== 401) showError(error.message, where);
  }

  /// Any call that answers 401 ends the session: the credential was revoked or expired.
  async function call(method, path, body) {
    try {
      return await api(method, path, body);
    } catch (error) {
      if (error.status === 401) {
        signOut();
        showError(`Signed out: ${error.message}`);
      }
      throw error;
    }
  }

  function text(tag, value, className) {
    const element = document.createElement(tag);
    element.textContent = value;
    if (className) element.className = className;
    return element;
  }

  function date(value) {
    if (!value) return "—";
    const at = new Date(value);
    return Number.isNaN(at.getTime()) ? value : at.toLocaleString();
  }

  function button(label, onClick, className) {
    const element = text("button", label, className);
    element.type = "button";
    element.addEventListener("click", onClick);
    return element;
  }

  /// A click handler running `work` (an API call and what follows), its failure shown
  /// in words on the page.
  function action(work) {
    return () => work().catch((error) => report(error));
  }

  // ----- signing in and out -----------------------------------------------------------

  async function signIn(event) {
    event.preventDefault();
    showError("");
    const key = $("api-key").value.trim();
    if (!key) return;
    try {
      if (config.login) {
        const answer = await api("POST", config.login, { api_key: key }, null);
        credential = answer.access_token;
      } else {
        credential = key;
      }
      $("api-key").value = "";
      await loadPage(null, true);
      $("sign-in").hidden = true;
      $("sign-out").hidden = false;
      $("tokens").hidden = false;
      $("new-token").focus();
    } catch (error) {
      credential = null;
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
    credential = null;
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

  // ----- usage charts -----------------------------------------------------------------

  const SVG = "http://www.w3.org/2000/svg";
  /// How the page stacks outcomes: what worked, what was refused, use of dead keys.
  const CLASSES = [
    { name: "ok", label: "OK", outcomes: ["ok"] },
    {
      name: "refused",
      label: "Refused",
      outcomes: ["scope_denied", "wrong_env", "tenant_mismatch", "rate_limited",
        "credits_exhausted", "ip_denied", "unavailable"],
    },
    { name: "gone", label: "Revoked or expired", outcomes: ["revoked", "expired", "leaked"] },
  ];

  /// A bucket's counts by class.
  function classify(bucket) {
    return CLASSES.map((kind) =>
      kind.outcomes.reduce((sum, outcome) => sum + (bucket.outcomes[outcome] || 0), 0));
  }

  function bucketLabel(start, bucket) {
    const at = new Date(start);
    return bucket === "hour"
      ? at.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" })
      : at.toLocaleDateString([], { month: "short", day: "numeric" });
  }

  function svgElement(tag, attributes) {
    const element = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
    return element;
  }

  /// A stacked bar chart of `summary`'s buckets (inline SVG, sized by its container),
  /// each bar titled with its numbers, and the same numbers in a table.
  function chart(summary, caption) {
    const figure = document.createElement("figure");
    figure.className = "chart";
    figure.dataset.bucket = summary.bucket;
    const width = 600;
    const height = 160;
    const plot = height - 2;
    const max = Math.max(1, ...summary.buckets.map((bucket) => bucket.total));
    const slot = width / summary.buckets.length;
    const svg = svgElement("svg", {
      viewBox: `0 0 ${width} ${height}`,
      role: "img",
      "aria-label": `${caption}: ${summary.total} requests`,
    });
    svg.append(svgElement("line", { x1: 0, y1: height - 1, x2: width, y2: height - 1, class: "axis" }));
    summary.buckets.forEach((bucket, index) => {
      const counts = classify(bucket);
      const group = svgElement("g", { class: "bucket" });
      const title = svgElement("title", {});
      title.textContent = `${bucketLabel(bucket.start, summary.bucket)}: ` +
        CLASSES.map((kind, i) => `${kind.label} ${counts[i]}`).join(", ");
      group.append(title);
      let y = height - 1;
      counts.forEach((count, i) => {
        if (!count) return;
        const tall = (count / max) * plot;
        y -= tall;
        group.append(svgElement("rect", {
          x: index * slot + slot * 0.1,
          y,
          width: slot * 0.8,
          height: tall,
          class: `bar ${CLASSES[i].name}`,
        }));
      });
      // The whole slot answers the hover, however short the bar.
      group.append(svgElement("rect", { x: index * slot, y: 0, width: slot, height, class: "hover" }));
      svg.append(group);
    });
    // The scale in the page's text, not in the drawing: it stays readable however
    // narrow the drawing gets.
    const scale = text(
      "p",
      summary.total === 0
        ? "No requests in this period."
        : `Tallest bar: ${max} ${max === 1 ? "request" : "requests"}`,
      "scale",
    );
    const legend = document.createElement("p");
    legend.className = "legend";
    for (const kind of CLASSES) {
      legend.append(text("span", kind.label, `key ${kind.name}`), " ");
    }
    const details = document.createElement("details");
    details.append(text("summary", `${caption} as a table`));
    const table = document.createElement("table");
    const head = document.createElement("tr");
    for (const title of ["Period", ...CLASSES.map((kind) => kind.label), "Total"]) {
      head.append(text("th", title));
    }
    table.append(head);
    for (const bucket of summary.buckets) {
      const row = document.createElement("tr");
      row.dataset.start = bucket.start;
      row.append(text("td", bucketLabel(bucket.start, summary.bucket)));
      for (const count of classify(bucket)) row.append(text("td", String(count)));
      row.append(text("td", String(bucket.total)));
      table.append(row);
    }
    details.append(table);
    figure.append(text("figcaption", caption), scale, svg, legend, details);
    return figure;
  }

  /// The day's and the month's charts of one key (`token`), or of the tenant (`null`).
  async function usageCharts(token) {
    const of = token ? `&token_id=${token.id}` : "";
    const [hours, days] = await Promise.all([
      call("GET", `/activity/summary?bucket=hour${of}`),
      call("GET", `/activity/summary?bucket=day${of}`),
    ]);
    const totals = document.createElement("p");
    totals.className = "totals";
    totals.append(
      text("span", `${hours.total} requests in the last 24 hours`, "total-day"),
      " · ",
      text("span", `${days.total} in the last 30 days`, "total-month"),
    );
    const last = document.createElement("p");
    last.className = "last-used";
    last.textContent = hours.last_used
      ? `Last used ${date(hours.last_used.at)}${hours.last_used.client_ip ? ` from ${hours.last_used.client_ip}` : ""}`
      : "Never used successfully (as far as the log remembers)";
    const charts = document.createElement("div");
    charts.className = "charts";
    charts.append(chart(hours, "Last 24 hours, by hour"), chart(days, "Last 30 days, by day"));
    return { totals, last, charts, days };
  }

  /// A key's usage, in the panel below the list.
  async function showUsage(token) {
    const usage = await usageCharts(token);
    $("usage-body").replaceChildren(usage.totals, usage.last, usage.charts);
    $("usage-title").textContent = `Usage of “${token.name}”`;
    $("usage").hidden = false;
    $("close-usage").focus();
  }

  /// The tenant's usage, all keys together, with its busiest keys.
  async function loadTenantUsage() {
    if (!config.activity) return;
    const usage = await usageCharts(null);
    const busiest = document.createElement("ol");
    busiest.id = "busiest";
    for (const busy of usage.days.busiest) {
      const item = document.createElement("li");
      item.dataset.id = String(busy.token_id);
      item.append(
        text("span", busy.name || `Key ${busy.token_id} (revoked)`, "name"),
        ` — ${busy.requests} requests`,
      );
      busiest.append(item);
    }
    const heading = text("h4", "Busiest keys, last 30 days");
    $("tenant-usage-body").replaceChildren(
      usage.totals, usage.last, usage.charts, heading,
      usage.days.busiest.length ? busiest : text("p", "No requests yet."),
    );
    $("tenant-usage").hidden = false;
  }

  // ----- webhook endpoints ------------------------------------------------------------

  /// The tenant's webhook endpoints (never their secrets).
  async function loadWebhooks() {
    if (!config.webhooks) return;
    const list = await call("GET", "/webhooks");
    const rows = list.data.map((endpoint) => {
      const row = document.createElement("tr");
      row.dataset.id = String(endpoint.id);
      const events = document.createElement("td");
      for (const event of endpoint.events) events.append(text("span", event, "badge scope"), " ");
      const status = document.createElement("td");
      status.append(text("span", endpoint.status, `badge ${endpoint.status === "active" ? "ok" : "expired"}`));
      row.append(
        text("td", endpoint.url, "url"),
        events,
        text("td", endpoint.description || "—"),
        status,
        text("td", date(endpoint.created_at)),
      );
      return row;
    });
    $("webhook-rows").replaceChildren(...rows);
    $("webhooks-empty").hidden = rows.length > 0;
    $("webhooks").hidden = false;
    await loadDeliveries(list.data);
  }

  /// The latest attempts at delivering to the tenant's endpoints, newest first.
  async function loadDeliveries(endpoints) {
    const pages = await Promise.all(endpoints.map((endpoint) =>
      call("GET", `/webhooks/${endpoint.id}/deliveries?limit=10`)
        .then((page) => page.data.map((attempt) => ({ ...attempt, url: endpoint.url })))));
    const attempts = pages.flat().sort((a, b) => Date.parse(b.at) - Date.parse(a.at)).slice(0, 20);
    const rows = attempts.map((attempt) => {
      const row = document.createElement("tr");
      row.dataset.eventId = attempt.event_id;
      const delivered = attempt.status !== null && attempt.status >= 200 && attempt.status < 300;
      const status = document.createElement("td");
      status.append(text("span", attempt.status === null ? "no answer" : String(attempt.status),
        `badge ${delivered ? "ok" : "expired"}`));
      row.append(
        text("td", date(attempt.at)),
        text("td", attempt.url, "url"),
        text("td", attempt.event),
        text("td", String(attempt.attempt)),
        status,
        text("td", `${attempt.latency_ms} ms`),
        text("td", attempt.error || "—"),
      );
      return row;
    });
    $("delivery-rows").replaceChildren(...rows);
    $("deliveries-empty").hidden = rows.length > 0;
  }

  // ----- leaked keys ------------------------------------------------------------------

  /// The keys revoked because a secret scanner reported them (their activity rows say
  /// which; each revoked key says where it was found), newest first.
  async function loadLeaked() {
    if (!config.activity) return;
    const page = await call("GET", `/activity?outcome=leaked&limit=${PAGE_SIZE}`);
    const ids = [...new Set(page.data.map((entry) => entry.token_id))];
    const keys = [];
    for (const id of ids) {
      try {
        keys.push(await call("GET", `/tokens/${id}`));
      } catch (error) {
        if (error.status !== 404) throw error; // forgotten past the retention
      }
    }
    const rows = keys.filter((key) => key.leak).map((key) => {
      const row = document.createElement("tr");
      row.dataset.id = String(key.id);
      const where = document.createElement("td");
      const url = key.leak.url || "";
      // Only a web address becomes a link; anything else a report says stays text.
      if (/^https:\/\//.test(url)) {
        const link = text("a", url);
        link.href = url;
        link.rel = "noopener noreferrer nofollow";
        link.target = "_blank";
        where.append(link);
      } else {
        where.append(url || "—");
      }
      row.append(
        text("td", `Key ${key.id}`),
        text("td", date(key.revoked_at)),
        where,
        text("td", key.leak.source || "—"),
      );
      return row;
    });
    $("leaked-rows").replaceChildren(...rows);
    $("leaked").hidden = rows.length === 0;
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

  // ----- limits: rate limits, credits, allowed addresses --------------------------------------

  const RATE_LINE = /^([a-z0-9_-]{1,32})\s+(\d+)\s*\/\s*(\d+)\s*s?$/;
  const number = (n) => Number(n).toLocaleString();

  /// A token's policies in a few words, one line each; "None" without any.
  function describeLimits(token) {
    const lines = (token.rate_limits || []).map(
      (rate) => `${rate.name}: ${number(rate.limit)} per ${number(rate.window_seconds)} s`,
    );
    if (token.credits) {
      const refill = token.credits.refill
        ? ` (${number(token.credits.refill.amount)} a ${token.credits.refill.every})`
        : "";
      lines.push(`${number(token.credits.remaining)} credits left${refill}`);
    }
    const ips = token.allowed_ips || [];
    if (ips.length) lines.push(`from ${ips.join(", ")}`);
    return lines.length ? lines : ["None"];
  }

  /// The three policy fields of a listed token, as the form reads them back.
  function limitsOf(token) {
    return {
      rate_limits: token.rate_limits || [],
      credits: token.credits
        ? { remaining: token.credits.remaining, refill: token.credits.refill || null }
        : null,
      allowed_ips: token.allowed_ips || [],
    };
  }

  /// Builds the limits fieldset of the form `prefix` (`create`, `edit`), filled from
  /// `token` (or empty).
  function fillLimits(prefix, token) {
    const field = (id, label, input, hint) => {
      const wrapper = document.createElement("div");
      const labelElement = text("label", label);
      labelElement.htmlFor = `${prefix}-${id}`;
      input.id = `${prefix}-${id}`;
      wrapper.append(labelElement, input);
      if (hint) wrapper.append(text("p", hint, "hint"));
      return wrapper;
    };
    const rates = document.createElement("textarea");
    rates.rows = 2;
    rates.spellcheck = false;
    const credits = document.createElement("input");
    credits.type = "number";
    credits.min = "0";
    const refillAmount = document.createElement("input");
    refillAmount.type = "number";
    refillAmount.min = "0";
    const refillEvery = document.createElement("select");
    for (const [value, label] of [["", "never"], ["day", "every day"], ["month", "every month"]]) {
      const option = text("option", label);
      option.value = value;
      refillEvery.append(option);
    }
    const ips = document.createElement("textarea");
    ips.rows = 2;
    ips.spellcheck = false;
    const limits = token ? limitsOf(token) : { rate_limits: [], credits: null, allowed_ips: [] };
    rates.value = limits.rate_limits
      .map((rate) => `${rate.name} ${rate.limit}/${rate.window_seconds}`)
      .join("\n");
    if (limits.credits) {
      credits.value = String(limits.credits.remaining);
      if (limits.credits.refill) {
        refillAmount.value = String(limits.credits.refill.amount);
        refillEvery.value = limits.credits.refill.every;
      }
    }
    ips.value = limits.allowed_ips.join("\n");
    $(`${prefix}-limits`).replaceChildren(
      text("legend", "Limits"),
      field("rate-limits", "Rate limits", rates,
        "One per line: name requests/seconds, e.g. burst 100/60. Empty: none."),
      field("credits", "Credits", credits, "Uses left. Empty: unlimited."),
      field("refill-amount", "Refill to", refillAmount),
      field("refill-every", "Refill", refillEvery),
      field("allowed-ips", "Allowed addresses", ips,
        "One address or CIDR range per line, e.g. 203.0.113.0/24. Empty: anywhere."),
    );
  }

  /// The policy fields of the form `prefix`, checked; a mistake is thrown in words.
  function readLimits(prefix) {
    const value = (id) => $(`${prefix}-${id}`).value.trim();
    const lines = (id) => value(id).split("\n").map((line) => line.trim()).filter(Boolean);
    const rate_limits = lines("rate-limits").map((line) => {
      const match = RATE_LINE.exec(line);
      if (!match) {
        throw new Error(`“${line}” is not a rate limit: write name requests/seconds, e.g. burst 100/60.`);
      }
      return { name: match[1], limit: Number(match[2]), window_seconds: Number(match[3]) };
    });
    let credits = null;
    if (value("credits") !== "") {
      credits = { remaining: Number(value("credits")), refill: null };
      if (value("refill-every")) {
        credits.refill = { amount: Number(value("refill-amount") || "0"), every: value("refill-every") };
      }
    }
    return { rate_limits, credits, allowed_ips: lines("allowed-ips") };
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
      config = await response.json();
    } catch (_) {
      showError("The page's configuration could not be loaded.");
      return;
    }
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
})();
