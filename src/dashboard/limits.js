// A key's limits (rate limits, credits, allowed addresses): described in the list,
// and edited in the create and edit forms.

import { $, text } from "./api.js";

const RATE_LINE = /^([a-z0-9_-]{1,32})\s+(\d+)\s*\/\s*(\d+)\s*s?$/;
const number = (n) => Number(n).toLocaleString();

/// A token's policies in a few words, one line each; "None" without any.
export function describeLimits(token) {
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
export function limitsOf(token) {
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
export function fillLimits(prefix, token) {
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
export function readLimits(prefix) {
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
