// The keys revoked because a secret scanner found them, with where.

import { $, PAGE_SIZE, call, config, date, text } from "./api.js";

/// The keys revoked because a secret scanner reported them (their activity rows say
/// which; each revoked key says where it was found), newest first.
export async function loadLeaked() {
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
