// The data-quality view: the "đúng, đủ, sạch, sống" index of the account's stations for a
// day (GET /api/quality?date=YYYY-MM-DD, the city's day, UTC+7), as a summary line for the
// city and each sector and two ranked tables, worst first: communes and stations; plus the
// month's and the year's CSV exports (fetched with the token, saved through a Blob URL).
// Uses app.js's helpers (state, t, esc, $, openStation) like history.js.
"use strict";

Object.assign(I18N.vi, { qualityTitle: "Chất lượng dữ liệu", qDate: "Ngày", qShow: "Xem", qCommunes: "Xã, phường kém nhất",
  qStations: "Trạm kém nhất", qName: "Tên", qDung: "Đúng", qDu: "Đủ", qSach: "Sạch", qSong: "Sống", qDelay: "Độ trễ trung vị",
  qIndex: "Chỉ số", qCity: "Toàn thành phố", qArea: "Toàn địa bàn", qSector: "Lĩnh vực", qCsvMonth: "CSV tháng", qCsvYear: "CSV năm",
  qNone: "Không có số liệu", qLoading: "Đang tải…", qStationsN: "trạm", qMessages: "bản tin", qAccepted: "nhận",
  qExpected: "dự kiến", qPeriod: "Kỳ" });
Object.assign(I18N.en, { qualityTitle: "Data quality", qDate: "Date", qShow: "Show", qCommunes: "Worst communes and wards",
  qStations: "Worst stations", qName: "Name", qDung: "Correct", qDu: "Complete", qSach: "Clean", qSong: "Timely", qDelay: "Median delay",
  qIndex: "Index", qCity: "Whole city", qArea: "Whole area", qSector: "Sector", qCsvMonth: "Month CSV", qCsvYear: "Year CSV",
  qNone: "No data", qLoading: "Loading…", qStationsN: "stations", qMessages: "messages", qAccepted: "accepted",
  qExpected: "expected", qPeriod: "Period" });

// Today in the city (UTC+7), YYYY-MM-DD.
const qualityToday = () => new Date(Date.now() + 7 * 3600000).toISOString().slice(0, 10);
const qPct = (v) => (v === null || v === undefined) ? "—" : `${v >= 1 ? "100" : (v * 100).toFixed(1)} %`;
const qDelay = (s) => (s === null || s === undefined) ? "—" : s < 90 ? `${s < 10 ? s.toFixed(1) : Math.round(s)} s`
  : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`;
// ≥ 90 green, ≥ 70 amber, else red; none without a value.
const qBand = (index) => (index === null || index === undefined) ? "none" : index >= 90 ? "green" : index >= 70 ? "amber" : "red";
const qIndex = (index) => (index === null || index === undefined) ? "—" : Number(index).toFixed(1);

async function qualityFetch(path) {
  const res = await fetch(path, { headers: { Authorization: "Bearer " + state.token } });
  if (!res.ok) throw new Error((await res.json().catch(() => ({}))).error || res.statusText);
  return res;
}

function qualityCounts(r) {
  return `${r.stations} ${t("qStationsN")} · ${r.messages} ${t("qMessages")} · ${r.accepted} ${t("qAccepted")} · ${Math.round(r.expected || 0)} ${t("qExpected")}`;
}

// Names in the page's language where the page knows them (the server's are Vietnamese).
function qualityName(r) {
  if (r.level === "city") return t(state.me && state.me.scope.level === "city" ? "qCity" : "qArea");
  if (r.level === "commune" && state.zones.has(r.id)) return zoneName(r.id);
  if (r.level === "sector") {
    const s = ((state.me && state.me.sectors) || []).find((x) => x.id === r.id);
    return `${t("qSector")}: ${(s && (state.lang === "en" ? s.name_en : s.name_vi)) || r.name || r.id}`;
  }
  return r.name || r.id;
}

// The city's and each sector's one-line summary.
function qualityLine(r) {
  const band = qBand(r.index);
  return `<p class="quality-line" data-level="${esc(r.level)}" data-id="${esc(r.id)}" data-band="${band}">
    <b>${esc(qualityName(r))}</b> · ${t("qIndex")} <b class="q-index" data-band="${band}">${qIndex(r.index)}</b> ·
    ${t("qDung")} ${qPct(r.dung)} · ${t("qDu")} ${qPct(r.du)} · ${t("qSach")} ${qPct(r.sach)} · ${t("qSong")} ${qPct(r.song)} ·
    ${t("qDelay")} ${qDelay(r.delay_median_s)} <span class="q-counts">· ${esc(qualityCounts(r))}</span></p>`;
}

function qualityTable(rows, id) {
  const head = `<thead><tr><th>#</th><th>${t("qName")}</th><th>${t("qDung")}</th><th>${t("qDu")}</th><th>${t("qSach")}</th>
    <th>${t("qSong")}</th><th>${t("qDelay")}</th><th>${t("qIndex")}</th></tr></thead>`;
  const body = rows.length ? rows.map((r, i) => {
    const band = qBand(r.index);
    return `<tr class="quality-row" data-level="${esc(r.level)}" data-id="${esc(r.id)}" data-band="${band}" title="${esc(qualityCounts(r))}">
      <td class="q-rank">${i + 1}</td><td>${esc(qualityName(r))}${r.level === "station" && r.name !== r.id ? ` <small>${esc(r.id)}</small>` : ""}</td>
      <td>${qPct(r.dung)}</td><td>${qPct(r.du)}</td><td>${qPct(r.sach)}</td><td>${qPct(r.song)}</td>
      <td>${qDelay(r.delay_median_s)}</td><td class="q-index" data-band="${band}">${qIndex(r.index)}</td></tr>`;
  }).join("") : `<tr><td colspan="8" class="q-none">${t("qNone")}</td></tr>`;
  return `<table id="${id}">${head}<tbody>${body}</tbody></table>`;
}

async function qualityLoad() {
  const date = $("#q-date").value || qualityToday();
  qualityLinks(date);
  $("#q-status").textContent = t("qLoading");
  try {
    const body = await (await qualityFetch(`/api/quality?date=${encodeURIComponent(date)}`)).json();
    const rows = Array.isArray(body) ? body : (body.rows || []);
    const of = (level) => rows.filter((r) => r.level === level);
    $("#q-summary").innerHTML = [...of("city"), ...of("sector")].map(qualityLine).join("");
    $("#q-communes-box").innerHTML = qualityTable(of("commune"), "q-communes");
    $("#q-stations-box").innerHTML = qualityTable(of("station"), "q-stations");
    $("#q-status").textContent = body.period ? `${t("qPeriod")}: ${body.period}` : "";
    $("#quality").dataset.date = date;
  } catch (err) {
    $("#q-status").textContent = err.message;
  }
}

// The CSV links follow the chosen date's month and year.
function qualityLinks(date) {
  $("#q-csv-month").textContent = `${t("qCsvMonth")} ${date.slice(0, 7)}`;
  $("#q-csv-year").textContent = `${t("qCsvYear")} ${date.slice(0, 4)}`;
}

async function qualityDownload(kind) {
  const date = $("#q-date").value || qualityToday();
  const period = kind === "month" ? date.slice(0, 7) : date.slice(0, 4);
  try {
    const res = await qualityFetch(`/api/quality?${kind}=${encodeURIComponent(period)}&format=csv`);
    const url = URL.createObjectURL(await res.blob());
    const a = document.createElement("a");
    a.href = url; a.download = `watchfloor-quality-${period}.csv`;
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 30000);
  } catch (err) {
    $("#q-status").textContent = err.message;
  }
}

function openQuality() {
  const panel = $("#quality");
  $("#history").hidden = true;
  // Built once per language (the strings are in the markup); the chosen date is kept.
  if (panel.dataset.lang !== state.lang) {
    const date = (panel.dataset.built && $("#q-date").value) || qualityToday();
    panel.innerHTML = `<button id="q-close" title="${t("close")}">×</button><h2>${t("qualityTitle")}</h2>
      <form id="q-form">
        <label>${t("qDate")} <input type="date" id="q-date" value="${esc(date)}" max="${qualityToday()}"></label>
        <button type="submit" id="q-show">${t("qShow")}</button>
        <a id="q-csv-month" class="q-csv" href="#"></a>
        <a id="q-csv-year" class="q-csv" href="#"></a>
      </form>
      <p id="q-status"></p>
      <div id="q-summary"></div>
      <div class="q-tables">
        <section><h3>${t("qCommunes")}</h3><div id="q-communes-box"></div></section>
        <section><h3>${t("qStations")}</h3><div id="q-stations-box"></div></section>
      </div>`;
    panel.dataset.built = "1"; panel.dataset.lang = state.lang;
    $("#q-form").addEventListener("submit", (e) => { e.preventDefault(); qualityLoad(); });
    $("#q-date").addEventListener("change", qualityLoad);
    $("#q-close").addEventListener("click", () => { panel.hidden = true; });
    $("#q-csv-month").addEventListener("click", (e) => { e.preventDefault(); qualityDownload("month"); });
    $("#q-csv-year").addEventListener("click", (e) => { e.preventDefault(); qualityDownload("year"); });
    $("#q-stations-box").addEventListener("click", (e) => {
      const row = e.target.closest(".quality-row");
      if (row && state.stations.has(row.dataset.id)) openStation(row.dataset.id);
    });
  }
  panel.hidden = false;
  qualityLoad();
}

$("#quality-open").addEventListener("click", openQuality);
// One full-screen panel at a time: opening the history closes this one.
$("#history-open").addEventListener("click", () => { $("#quality").hidden = true; });
