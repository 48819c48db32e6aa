// Usage charts: a key's or the tenant's requests per hour and per day, stacked by
// outcome, drawn as inline SVG with the same numbers in a table.

import { $, call, config, date, text } from "./api.js";

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
export async function showUsage(token) {
  const usage = await usageCharts(token);
  $("usage-body").replaceChildren(usage.totals, usage.last, usage.charts);
  $("usage-title").textContent = `Usage of “${token.name}”`;
  $("usage").hidden = false;
  $("close-usage").focus();
}

/// The tenant's usage, all keys together, with its busiest keys.
export async function loadTenantUsage() {
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
