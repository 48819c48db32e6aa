// The API Tokens page's client of the management API, and the small DOM helpers every
// part of the page uses: the credential lives here, in memory only, and every value is
// rendered as text (never as HTML).

export const PAGE_SIZE = 20;
export const $ = (id) => document.getElementById(id);

/// The page's configuration (`config.json`), once read.
export let config = null;
// The credential the API calls carry: an access token from POST /auth/login, or the
// key itself when the login route is not mounted. Memory only.
export let credential = null;
// What ends the session when a call answers 401 (the page's sign-out).
let signedOut = () => {};

export function configure(read) {
  config = read;
}

export function setCredential(value) {
  credential = value;
}

/// `handler` runs when a call answers 401: the credential was revoked or expired.
export function onSignedOut(handler) {
  signedOut = handler;
}

/// An API answer that was not a success, with the message the API gave.
export class ApiError extends Error {
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

export async function api(method, path, body, token = credential) {
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

export function showError(message, where = $("error")) {
  where.textContent = message;
  where.hidden = !message;
}

/// Shows a failed call's message, unless it signed the page out (which said why).
export function report(error, where) {
  if (error.status !== 401) showError(error.message, where);
}

/// Any call that answers 401 ends the session: the credential was revoked or expired.
export async function call(method, path, body) {
  try {
    return await api(method, path, body);
  } catch (error) {
    if (error.status === 401) {
      signedOut();
      showError(`Signed out: ${error.message}`);
    }
    throw error;
  }
}

export function text(tag, value, className) {
  const element = document.createElement(tag);
  element.textContent = value;
  if (className) element.className = className;
  return element;
}

export function date(value) {
  if (!value) return "—";
  const at = new Date(value);
  return Number.isNaN(at.getTime()) ? value : at.toLocaleString();
}

export function button(label, onClick, className) {
  const element = text("button", label, className);
  element.type = "button";
  element.addEventListener("click", onClick);
  return element;
}

/// A click handler running `work` (an API call and what follows), its failure shown
/// in words on the page.
export function action(work) {
  return () => work().catch((error) => report(error));
}
