// The history view: search the incident store (GET /api/alerts with filters, a page at a
// time following the Link header), open an old alert with its whole timeline, download a
// day's report as CSV. Uses app.js's helpers (api, t, esc, $, showAlert).
"use strict";

Object.assign(I18N.vi, { historyTitle: "Tra cứu lịch sử cảnh báo", from: "Từ ngày", to: "Đến ngày", zone: "Khu vực",
  severity: "Mức tối thiểu", stateLabel: "Trạng thái", rule: "Quy tắc", search: "Tìm", more: "Xem thêm", any: "tất cả",
  open: "đang mở", report: "Báo cáo ngày (CSV)", fired: "Phát sinh", noResults: "Không có cảnh báo", close: "Đóng" });
Object.assign(I18N.en, { historyTitle: "Alert history", from: "From", to: "To", zone: "Zone",
  severity: "Lowest severity", stateLabel: "State", rule: "Rule", search: "Search", more: "More", any: "any",
  open: "open", report: "Daily report (CSV)", fired: "Fired", noResults: "No alerts", close: "Close" });

const history = { next: null };

// The city's day (UTC+7) of a date input, as epoch ms.
function dayStart(value) { return value ? Date.parse(value + "T00:00:00+07:00") : null; }

function historyQuery() {
  const p = new URLSearchParams({ limit: "50" });
  const from = dayStart($("#h-from").value), to = dayStart($("#h-to").value);
  if (from !== null) p.set("since", String(from));
  if (to !== null) p.set("until", String(to + 86400000));
  for (const [id, name] of [["#h-zone", "zone"], ["#h-severity", "severity"], ["#h-state", "state"], ["#h-rule", "rule"]]) {
    const v = $(id).value.trim();
    if (v) p.set(name, v);
  }
  return "/api/alerts?" + p.toString();
}

async function historyFetch(path, append) {
  const res = await fetch(path, { headers: { Authorization: "Bearer " + state.token } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) { $("#h-status").textContent = body.error || res.statusText; return; }
  const link = res.headers.get("Link");
  history.next = link ? link.slice(1, link.indexOf(">")) : null;
  const rows = body.map((a) => `<tr class="history-row" data-id="${esc(a.alert_id)}" data-state="${esc(a.state)}">
      <td>${new Date(a.fired_at).toLocaleString(state.lang === "vi" ? "vi-VN" : "en-GB")}</td>
      <td class="sev-${esc(a.severity)}">${t(a.severity)}</td><td>${esc(a.rule)}</td><td>${esc(a.key)}</td>
      <td>${esc(a.ward ? zoneName(a.ward) : a.district || "")}</td><td>${t(a.state)}</td><td>${esc(a.message)}</td></tr>`).join("");
  const tbody = $("#h-results tbody");
  tbody.innerHTML = (append ? tbody.innerHTML : "") + rows;
  $("#h-status").textContent = tbody.children.length ? `${tbody.children.length}` : t("noResults");
  $("#h-more").hidden = !history.next;
}

function openHistory() {
  const today = new Date(Date.now() + 7 * 3600000).toISOString().slice(0, 10);
  const panel = $("#history");
  if (!panel.dataset.built) {
    panel.innerHTML = `<button id="h-close" title="${t("close")}">×</button><h2>${t("historyTitle")}</h2>
      <form id="h-form">
        <label>${t("from")} <input type="date" id="h-from" value="${today}"></label>
        <label>${t("to")} <input type="date" id="h-to" value="${today}"></label>
        <label>${t("zone")} <input id="h-zone" size="12"></label>
        <label>${t("severity")} <select id="h-severity"><option value="">${t("any")}</option>
          ${["minor", "major", "critical"].map((s) => `<option value="${s}">${t(s)}</option>`).join("")}</select></label>
        <label>${t("stateLabel")} <select id="h-state"><option value="">${t("any")}</option>
          ${["open", "firing", "acknowledged", "resolved"].map((s) => `<option value="${s}">${t(s)}</option>`).join("")}</select></label>
        <label>${t("rule")} <input id="h-rule" size="18"></label>
        <button type="submit" id="h-search">${t("search")}</button>
        <a id="h-report" href="#">${t("report")}</a>
      </form>
      <p id="h-status"></p>
      <table id="h-results"><thead><tr><th>${t("fired")}</th><th>${t("severity")}</th><th>${t("rule")}</th><th></th><th>${t("zone")}</th><th>${t("stateLabel")}</th><th></th></tr></thead><tbody></tbody></table>
      <button id="h-more" hidden>${t("more")}</button>`;
    panel.dataset.built = "1";
    $("#h-form").addEventListener("submit", (e) => { e.preventDefault(); historyFetch(historyQuery(), false); });
    $("#h-more").addEventListener("click", () => history.next && historyFetch(history.next, true));
    $("#h-close").addEventListener("click", () => { panel.hidden = true; });
    $("#h-results").addEventListener("click", async (e) => {
      const row = e.target.closest(".history-row");
      if (row) showAlert(await api(`/api/alerts/${encodeURIComponent(row.dataset.id)}`));
    });
    $("#h-report").addEventListener("click", async (e) => {
      e.preventDefault();
      const date = $("#h-from").value;
      const res = await fetch(`/api/reports/daily?format=csv&date=${date}`, { headers: { Authorization: "Bearer " + state.token } });
      if (!res.ok) { $("#h-status").textContent = (await res.json().catch(() => ({}))).error || res.statusText; return; }
      const a = document.createElement("a");
      a.href = URL.createObjectURL(await res.blob()); a.download = `watchfloor-${date}.csv`; a.click();
    });
  }
  panel.hidden = false;
  historyFetch(historyQuery(), false);
}

$("#history-open").addEventListener("click", openHistory);
