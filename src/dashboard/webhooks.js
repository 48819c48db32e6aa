// The tenant's webhook endpoints (never their secrets) and the latest attempts at
// delivering to them.

import { $, call, config, date, text } from "./api.js";

/// The tenant's webhook endpoints (never their secrets).
export async function loadWebhooks() {
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
