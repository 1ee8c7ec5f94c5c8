// Watchfloor wall-screen dashboard. Plain JS, no build step, no CDN: Leaflet (no tile
// layer: the map is the city's commune/ward polygons) and uPlot are vendored.
// Everything shown is computed by the server; the page only renders what the WebSocket
// and REST APIs send, updating the one marker, row or tile that changed.
"use strict";

const I18N = {
  vi: { title: "Trung tâm điều hành", logout: "Đăng xuất", alerts: "Cảnh báo", showResolved: "hiện đã xử lý",
    login: "Đăng nhập", token: "Mã truy cập", loginButton: "Đăng nhập", online: "Đã kết nối", offline: "Mất kết nối — đang kết nối lại",
    ack: "Xác nhận", resolve: "Đóng", firing: "Đang cảnh báo", acknowledged: "Đã xác nhận", resolved: "Đã xử lý",
    history: "Lịch sử", quality: "Chất lượng dữ liệu", badToken: "Mã không hợp lệ",
    noData: "chưa có dữ liệu", ok: "bình thường", critical: "nghiêm trọng", major: "cao", minor: "thấp", info: "thông tin",
    centreCity: "Trung tâm điều hành thành phố", centreDept: "Trung tâm điều hành — {unit}", centreArea: "Trung tâm điều hành {name}",
    target: "mục tiêu", trend_up: "tăng", trend_down: "giảm", trend_flat: "không đổi",
    period_live: "trực tiếp", period_hourly: "theo giờ", period_daily: "trong ngày", period_monthly: "trong tháng",
    zoneSelect: "Chọn xã, phường", noKpis: "chưa có chỉ số",
    // Terms the server sends in Vietnamese (VN_AQI categories, units): shown as they are.
    terms: {} },
  en: { title: "Operations Centre", logout: "Log out", alerts: "Alerts", showResolved: "show resolved",
    login: "Log in", token: "Access token", loginButton: "Log in", online: "Connected", offline: "Disconnected — reconnecting",
    ack: "Acknowledge", resolve: "Resolve", firing: "Firing", acknowledged: "Acknowledged", resolved: "Resolved",
    history: "History", quality: "Data quality", badToken: "Unknown token",
    noData: "no data", ok: "normal", critical: "critical", major: "major", minor: "minor", info: "info",
    centreCity: "City operations centre", centreDept: "Operations centre — {unit}", centreArea: "{name} operations centre",
    target: "target", trend_up: "rising", trend_down: "falling", trend_flat: "steady",
    period_live: "live", period_hourly: "hourly", period_daily: "today", period_monthly: "this month",
    zoneSelect: "Choose a commune or ward", noKpis: "no indicators yet",
    terms: { "Tốt": "Good", "Trung bình": "Moderate", "Kém": "Poor", "Xấu": "Bad", "Rất xấu": "Very bad", "Nguy hại": "Hazardous",
      "cảnh báo": "alerts", "phút": "min", "giờ": "h", "ca": "cases", "trạm": "stations", "cơ sở": "facilities", "lượt": "times" } },
};
const SEVERITY_RANK = { info: 1, minor: 2, major: 3, critical: 4 };
const COLOURS = { critical: "#ff4d4f", major: "#ff9f1a", minor: "#f5d90a", info: "#58a6ff", ok: "#3fb950", none: "#6e7681" };

const state = {
  lang: localStorage.getItem("wf-lang") || "vi",
  token: sessionStorage.getItem("wf-token"),
  me: null, ws: null, seq: {}, alerts: new Map(), stations: new Map(), markers: new Map(),
  kpis: new Map(), sparks: {}, tiles: new Map(), zone: null, zones: new Map(), detailStation: null, detailChart: null,
  retry: 1000, map: null, zoneLabels: [],
};
const t = (key) => (I18N[state.lang] || I18N.vi)[key] || key;
// A template string with {name} placeholders filled in.
const tf = (key, vars) => t(key).replace(/\{(\w+)\}/g, (_, k) => vars[k] ?? "");
// A Vietnamese term from the server, in the page's language when the table knows it.
const term = (s) => (s && (I18N[state.lang] || I18N.vi).terms[s]) || s || "";
const setText = (el, text) => { if (el && el.textContent !== text) el.textContent = text; };
const $ = (sel) => document.querySelector(sel);

function applyLanguage() {
  document.documentElement.lang = state.lang;
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  $("#lang").textContent = state.lang === "vi" ? "EN" : "VI";
  setConnection(state.ws && state.ws.readyState === 1);
  renderTitle(); renderWho(); renderZoneSelect();
  renderAlerts(); renderKpis(); renderLegend(); renderZoneLabels();
}

// ---- the centre: title, account line ----------------------------------------------------
const isEn = () => state.lang === "en";

// A commune's name from the zones file (a legacy district's from its KPI row), else its id.
function zoneName(id) {
  const p = state.zones.get(id);
  if (p) return (isEn() && p.name_en) || p.name || id;
  const row = state.kpis.get(id);
  if (row) return (isEn() && row.row.name_en) || row.row.name || id;
  return id;
}

// The account's sectors' names (field "name") or units (field "unit"), in the page language.
function sectorNames(field) {
  const sectors = (state.me && state.me.sectors) || [];
  return sectors.map((s) => (isEn() ? s[field + "_en"] : s[field + "_vi"]) || s.name_vi || s.id).join(", ");
}

// City + every sector: the city's centre; city + sectors: a department's centre; an area
// (communes, a cluster, a legacy district): that area's centre, with its sectors if any.
function centreTitle() {
  const me = state.me;
  if (!me) return t("title");
  if (me.scope.level === "city") return me.sectors ? tf("centreDept", { unit: sectorNames("unit") }) : t("centreCity");
  const title = tf("centreArea", { name: [].concat(me.scope.id).map(zoneName).join(", ") });
  return me.sectors && me.sectors.length ? `${title} — ${sectorNames("name")}` : title;
}

function renderTitle() {
  const title = centreTitle();
  const el = $("#centre-title");
  setText(el, title);
  el.dataset.centre = !state.me ? "" : state.me.scope.level === "city" ? (state.me.sectors ? "department" : "city") : "area";
  const doc = `Watchfloor — ${title}`;
  if (document.title !== doc) document.title = doc;
}

function renderWho() {
  const me = state.me;
  if (!me) return;
  const area = `${me.scope.level}${me.scope.id ? ": " + [].concat(me.scope.id).join(", ") : ""}`;
  const sectors = me.sectors && me.sectors.length ? ` · <span class="who-sectors">${esc(sectorNames("name"))}</span>` : "";
  $("#who").innerHTML = `${esc(me.name)} · ${esc(me.role)} · ${esc(area)}${sectors}`;
}

function setConnection(online) {
  const el = $("#conn-status");
  el.dataset.state = online ? "online" : "offline";
  el.textContent = online ? t("online") : t("offline");
}

async function api(path, options = {}) {
  const res = await fetch(path, { ...options, headers: { "Authorization": "Bearer " + state.token, "Content-Type": "application/json", ...(options.headers || {}) } });
  if (!res.ok) { const body = await res.json().catch(() => ({})); throw new Error(body.error || res.statusText); }
  return res.json();
}

// ---- login -------------------------------------------------------------------------
function showLogin(message) {
  $("#login").hidden = false; $("#login-error").textContent = message || "";
  $("#login-token").focus();
}
$("#login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  state.token = $("#login-token").value.trim();
  try { await start(); sessionStorage.setItem("wf-token", state.token); $("#login").hidden = true; }
  catch (err) { showLogin(t("badToken")); }
});
$("#logout").addEventListener("click", () => { sessionStorage.removeItem("wf-token"); location.reload(); });
$("#lang").addEventListener("click", () => { state.lang = state.lang === "vi" ? "en" : "vi"; localStorage.setItem("wf-lang", state.lang); applyLanguage(); });
$("#show-resolved").addEventListener("change", renderAlerts);
$("#detail-close").addEventListener("click", closeDetail);

async function start() {
  state.me = await api("/api/me");
  renderWho(); renderTitle();
  await buildMap();
  renderTitle(); renderZoneSelect(); renderKpis();
  connect();
}

// ---- map -----------------------------------------------------------------------------
async function buildMap() {
  if (state.map) return;
  const zones = await api("/api/zones");
  const map = L.map("map", { zoomControl: true, attributionControl: false, preferCanvas: true });
  state.map = map;
  // Two tiers: the city, then its communes and wards (level "commune"; "ward" in older
  // files). Legacy district polygons, if a file still has them, are not drawn.
  const commune = (f) => f.properties.level === "commune" || f.properties.level === "ward";
  const layer = L.geoJSON(zones, {
    filter: commune,
    style: { color: "#30363d", weight: 1, fillColor: "#12202b", fillOpacity: 0.9 },
  }).addTo(map);
  const communes = zones.features.filter(commune);
  for (const f of communes) state.zones.set(f.properties.id ?? f.id, f.properties);
  state.zoneLabels = communes.map((f) => {
    const centre = L.geoJSON(f).getBounds().getCenter();
    return { props: f.properties, marker: L.marker(centre, { interactive: false, icon: zoneLabelIcon(f.properties) }).addTo(map) };
  });
  // An area's centre (communes, a cluster, a legacy district) opens on its own polygons,
  // outlined; the city's centres (every sector or a department) keep the whole city.
  const own = communes.filter((f) => ownsZone(f.properties.id ?? f.id, f.properties));
  if (own.length) {
    state.focus = L.geoJSON({ type: "FeatureCollection", features: own }, {
      interactive: false, style: { color: "#79c0ff", weight: 3, opacity: 1, fill: false },
    }).addTo(map);
    map.fitBounds(state.focus.getBounds(), { padding: [30, 30] });
  } else {
    map.fitBounds(layer.getBounds(), { padding: [10, 10] });
  }
  const stations = await api("/api/stations");
  for (const s of stations) {
    state.stations.set(s.id, s);
    const marker = L.circleMarker([s.lat, s.lon], { radius: s.kind === "camera" ? 5 : 7, weight: 1, color: "#0d1117", fillOpacity: 0.95, fillColor: s.latest ? COLOURS.ok : COLOURS.none });
    marker.bindTooltip(`${s.id} — ${s.name}`);
    marker.on("click", () => openStation(s.id));
    marker.addTo(map);
    state.markers.set(s.id, marker);
  }
  renderLegend();
  // Stations that start reporting turn from grey to green: a light refresh, restyling only
  // the markers whose state changed.
  setInterval(async () => {
    try {
      for (const s of await api("/api/stations")) {
        const known = state.stations.get(s.id);
        if (known && s.latest && !known.latest) { known.latest = s.latest; refreshMarker(s.id); }
      }
    } catch (e) { /* offline: the connection indicator says so */ }
  }, 20000);
}

// Whether a commune is in the account's area (false for city accounts: nothing to outline).
function ownsZone(id, props) {
  const scope = state.me && state.me.scope;
  if (!scope || scope.level === "city") return false;
  if (scope.level === "district") return props.legacy_district === scope.id;
  return [].concat(scope.id).includes(id);
}

// Commune labels in the page's language (name_en in English, when the file gives one).
function zoneLabelIcon(props) {
  const name = state.lang === "en" && props.name_en ? props.name_en : props.name;
  return L.divIcon({ className: "zone-label", html: esc(name), iconSize: null });
}
function renderZoneLabels() {
  for (const { props, marker } of state.zoneLabels) marker.setIcon(zoneLabelIcon(props));
}

function renderLegend() {
  $("#legend").innerHTML = ["critical", "major", "minor", "ok", "none"].map((k) => `<span style="background:${COLOURS[k]}"></span>${t(k === "none" ? "noData" : k)}`).join("");
}

// After a snapshot: one pass over the alerts, then every marker once.
function refreshAllMarkers() {
  const worst = new Map();
  for (const a of state.alerts.values()) {
    if (a.state === "resolved") continue;
    const w = worst.get(a.key);
    if (!w || SEVERITY_RANK[a.severity] > SEVERITY_RANK[w]) worst.set(a.key, a.severity);
  }
  state.markers.forEach((marker, id) => {
    const s = state.stations.get(id);
    const sev = worst.get(id);
    marker.setStyle({ fillColor: sev ? COLOURS[sev] : (s && (s.latest || s.seen) ? COLOURS.ok : COLOURS.none) });
  });
}

// The worst open alert of a station colours its marker; only that marker is restyled.
function refreshMarker(stationId) {
  const marker = state.markers.get(stationId);
  if (!marker) return;
  let worst = null;
  for (const a of state.alerts.values()) {
    if (a.key === stationId && a.state !== "resolved" && (!worst || SEVERITY_RANK[a.severity] > SEVERITY_RANK[worst])) worst = a.severity;
  }
  const s = state.stations.get(stationId);
  marker.setStyle({ fillColor: worst ? COLOURS[worst] : (s && (s.latest || s.seen) ? COLOURS.ok : COLOURS.none) });
}

// ---- WebSocket -------------------------------------------------------------------------
function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  state.ws = ws;
  ws.onopen = () => {
    ws.send(JSON.stringify({ op: "auth", token: state.token }));
  };
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.type === "welcome") {
      setConnection(true); state.retry = 1000;
      for (const channel of ["alerts", "kpis"]) {
        const sub = { op: "subscribe", channel };
        if (state.seq[channel] !== undefined) sub.since = state.seq[channel];
        ws.send(JSON.stringify(sub));
      }
      if (state.detailStation) subscribeStation(state.detailStation);
    } else if (msg.type === "snapshot") {
      state.seq[msg.channel] = msg.seq;
      if (msg.channel === "alerts") { state.alerts.clear(); msg.data.forEach(upsertAlert); renderAlerts(); refreshAllMarkers(); }
      else if (msg.channel === "kpis") { state.kpis.clear(); msg.data.forEach((z) => updateKpi(z, true)); renderKpis(); }
      else if (msg.channel === "stations") { msg.data.forEach(onReading); }
    } else if (msg.type === "resumed") {
      state.seq[msg.channel] = Math.max(state.seq[msg.channel] || 0, msg.seq);
    } else if (msg.type === "delta") {
      state.seq[msg.channel] = Math.max(state.seq[msg.channel] || 0, msg.seq);
      if (msg.channel === "alerts") { upsertAlert(msg.data); renderAlerts(); refreshMarker(msg.data.key); if (state.detailAlert === msg.data.alert_id) showAlert(msg.data); }
      else if (msg.channel === "kpis") { msg.data.forEach((z) => updateKpi(z, false)); renderKpis(); }
      else if (msg.channel === "stations") { onReading(msg.data); }
    } else if (msg.type === "error") {
      console.warn(msg.message);
    }
  };
  ws.onclose = () => {
    setConnection(false);
    state.retry = Math.min(state.retry * 2, 15000);
    setTimeout(connect, state.retry);
  };
}

function upsertAlert(a) { state.alerts.set(a.alert_id, a); }

// ---- alerts ---------------------------------------------------------------------------
function fmtTime(ms) { return new Date(ms).toLocaleTimeString(state.lang === "vi" ? "vi-VN" : "en-GB", { hour: "2-digit", minute: "2-digit", second: "2-digit" }); }
function esc(s) { return String(s ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c])); }

function renderAlerts() {
  const list = $("#alerts");
  if (!list) return;
  const showResolved = $("#show-resolved").checked;
  const items = [...state.alerts.values()]
    .filter((a) => showResolved || a.state !== "resolved")
    .sort((a, b) => (a.state === "resolved") - (b.state === "resolved") || SEVERITY_RANK[b.severity] - SEVERITY_RANK[a.severity] || b.updated_at - a.updated_at)
    .slice(0, 200);
  $("#alert-count").textContent = `(${[...state.alerts.values()].filter((a) => a.state !== "resolved").length})`;
  const existing = new Map([...list.children].map((li) => [li.dataset.id, li]));
  const canAct = state.me && state.me.may_act;
  items.forEach((a, i) => {
    let li = existing.get(a.alert_id);
    const html = `<div class="bar"></div><div><div class="msg">${esc(a.message)}</div>
      <div class="meta"><span class="alert-state">${t(a.state)}</span> · ${esc(a.rule)} · ${esc(a.key)} · ${fmtTime(a.updated_at)}${a.acknowledged ? " · ✓ " + esc(a.acknowledged.by) : ""}${a.ward ? " · " + esc(a.ward) : ""}</div></div>
      <div class="actions">${canAct && a.state === "firing" ? `<button class="ack-button">${t("ack")}</button>` : ""}${canAct && a.state !== "resolved" ? `<button class="resolve-button">${t("resolve")}</button>` : ""}</div>`;
    if (!li) { li = document.createElement("li"); li.className = "alert-item"; li.dataset.id = a.alert_id; }
    if (li.dataset.html !== html) { li.innerHTML = html; li.dataset.html = html; }
    li.dataset.rule = a.rule; li.dataset.key = a.key; li.dataset.state = a.state; li.dataset.severity = a.severity;
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
    existing.delete(a.alert_id);
  });
  existing.forEach((li) => li.remove());
}

$("#alerts").addEventListener("click", async (e) => {
  const li = e.target.closest(".alert-item");
  if (!li) return;
  const id = li.dataset.id;
  try {
    if (e.target.classList.contains("ack-button")) { upsertAlert(await api(`/api/alerts/${id}/ack`, { method: "POST", body: "{}" })); renderAlerts(); }
    else if (e.target.classList.contains("resolve-button")) { upsertAlert(await api(`/api/alerts/${id}/resolve`, { method: "POST", body: "{}" })); renderAlerts(); }
    else { showAlert(await api(`/api/alerts/${id}`)); }
  } catch (err) { alert(err.message); }
});

function showAlert(a) {
  state.detailAlert = a.alert_id;
  $("#detail").hidden = false;
  $("#detail-body").innerHTML = `<h2>${esc(a.message)}</h2>
    <p>${esc(a.rule)} · ${esc(a.key)} · <b>${t(a.state)}</b> · ${t(a.severity)}${a.assignee ? " · → " + esc(a.assignee) : ""}</p>
    <h3>${t("history")}</h3><table>${a.history.map((h) => `<tr><td>${fmtTime(h.at)}</td><td>${esc(h.event)}</td><td>${esc(h.by || "")}</td><td>${esc(h.detail)}</td></tr>`).join("")}</table>`;
  if (state.stations.has(a.key)) openStation(a.key, true); else { $("#detail-chart").innerHTML = ""; }
}

function closeDetail() {
  $("#detail").hidden = true; state.detailAlert = null;
  if (state.detailStation && state.ws && state.ws.readyState === 1) state.ws.send(JSON.stringify({ op: "unsubscribe", channel: "stations" }));
  state.detailStation = null;
}

// ---- station drill-down -------------------------------------------------------------------
async function openStation(id, keepBody) {
  const s = await api(`/api/stations/${encodeURIComponent(id)}`);
  $("#detail").hidden = false;
  if (!keepBody) { state.detailAlert = null; $("#detail-body").innerHTML = `<h2>${esc(s.id)} — ${esc(s.name)}</h2><p>${esc(s.kind)} · ${esc(s.ward || "")} · ${esc(s.district || "")}</p>`; }
  state.detailStation = id;
  const metrics = [...new Set((s.recent || []).flatMap((r) => Object.keys(r.values)))].filter((m) => m !== "confidence").slice(0, 4);
  state.detailSeries = { metrics, ts: [], values: metrics.map(() => []) };
  (s.recent || []).forEach((r) => pushReading(r.ts, r.values));
  drawDetailChart();
  subscribeStation(id);
}

function subscribeStation(id) {
  if (state.ws && state.ws.readyState === 1) state.ws.send(JSON.stringify({ op: "subscribe", channel: "stations", filter: { station: id } }));
}

function pushReading(ts, values) {
  const d = state.detailSeries;
  if (!d || (d.ts.length && ts <= d.ts[d.ts.length - 1])) return;
  d.ts.push(ts / 1000); d.metrics.forEach((m, i) => d.values[i].push(values[m] ?? null));
  if (d.ts.length > 240) { d.ts.shift(); d.values.forEach((v) => v.shift()); }
}

function onReading(r) {
  const s = state.stations.get(r.station);
  if (s && !s.seen) { s.seen = true; refreshMarker(r.station); }
  if (r.station === state.detailStation) {
    pushReading(r.ts, r.values);
    if (state.detailChart) state.detailChart.setData([state.detailSeries.ts, ...state.detailSeries.values]);
  }
}

function drawDetailChart() {
  const el = $("#detail-chart"); el.innerHTML = "";
  const d = state.detailSeries;
  if (!d.metrics.length) { state.detailChart = null; return; }
  const palette = ["#58a6ff", "#ff9f1a", "#3fb950", "#ff4d4f"];
  state.detailChart = new uPlot({ width: 560, height: 220,
    series: [{}, ...d.metrics.map((m, i) => ({ label: m, stroke: palette[i], width: 2, scale: i === 0 ? "y" : m }))],
    axes: [{ stroke: "#8b949e", grid: { stroke: "#30363d" } }, { stroke: "#8b949e", grid: { stroke: "#30363d" } }],
    scales: { x: { time: true } } }, [d.ts, ...d.values], el);
  el.insertAdjacentHTML("beforeend", `<p class="sub">${d.metrics.map((m, i) => `<span style="color:${palette[i]}">■ ${esc(m)}</span>`).join(" ")}</p>`);
}

// ---- KPIs --------------------------------------------------------------------------------
// A row per zone (`city`, a commune, a legacy district) of the account's own sector view,
// each a list of indicators; the tiles follow that list (one per indicator, in order).
const HISTORY_POINTS = 120; // two hours at one point a minute, as the server keeps
const BAND_COLOURS = { green: "#3fb950", amber: "#ff9f1a", red: "#ff4d4f", none: "#6e7681" };
const TREND_ARROWS = { up: "▲", down: "▼", flat: "▶" };

// The zones the account's tiles can show: the city, its legacy district, or its communes.
function scopeZones() {
  const scope = state.me && state.me.scope;
  if (!scope || scope.level === "city") return ["city"];
  return [].concat(scope.id);
}

// The zone whose tiles are shown: a cluster centre's chosen commune, else its first.
function scopeZone() {
  const zones = scopeZones();
  return zones.includes(state.zone) ? state.zone : zones[0];
}

// A cluster centre (several communes) switches between them with a row of buttons.
function renderZoneSelect() {
  const box = $("#zone-select");
  if (!box) return;
  const zones = scopeZones();
  box.hidden = zones.length < 2;
  if (zones.length < 2) { box.innerHTML = ""; return; }
  const current = scopeZone();
  box.setAttribute("aria-label", t("zoneSelect"));
  box.innerHTML = zones.map((id) => `<button type="button" class="zone-button${id === current ? " active" : ""}" data-zone="${esc(id)}" aria-pressed="${id === current}">${esc(zoneName(id))}</button>`).join("");
}
$("#zone-select").addEventListener("click", (e) => {
  const button = e.target.closest(".zone-button");
  if (!button || button.dataset.zone === scopeZone()) return;
  state.zone = button.dataset.zone;
  renderZoneSelect(); renderKpis();
});

// Snapshots carry each indicator's server history; deltas add a point a minute client-side.
function updateKpi(z, withHistory) {
  if (!z || !Array.isArray(z.indicators)) return;
  if (state.me && state.me.view && z.view && z.view !== state.me.view) return; // not this account's view
  const prev = state.kpis.get(z.zone);
  const history = {};
  for (const ind of z.indicators) {
    const server = withHistory && z.history && z.history[ind.id];
    const points = Array.isArray(server) ? server.map((p) => ({ ts: p.ts, value: p.value ?? null })) : ((prev && prev.history[ind.id]) || []);
    const last = points[points.length - 1];
    if (!withHistory && (!last || z.ts - last.ts >= 60000)) {
      points.push({ ts: z.ts, value: ind.value ?? null });
      while (points.length > HISTORY_POINTS) points.shift();
    }
    history[ind.id] = points;
  }
  state.kpis.set(z.zone, { row: z, history });
}

// An integer as it is, anything else with one decimal; "—" for no value.
const fmtValue = (v) => (v === null || v === undefined || Number.isNaN(Number(v))) ? "—" : (Number.isInteger(Number(v)) ? String(Number(v)) : Number(v).toFixed(1));

function clearTiles(box) {
  Object.values(state.sparks).forEach((u) => u.destroy());
  state.sparks = {}; state.tiles = new Map();
  box.innerHTML = "";
}

function buildTiles(box, indicators) {
  clearTiles(box);
  for (const ind of indicators) {
    const el = document.createElement("div");
    el.className = "kpi";
    el.id = `kpi-${ind.id}`;
    el.dataset.indicator = ind.id;
    el.innerHTML = `<div class="label"></div><div class="value"><span class="num"></span><span class="unit"></span></div>
      <div class="sub"><span class="target"></span><span class="trend"></span><span class="category"></span></div><div class="spark"></div>`;
    box.appendChild(el);
    state.tiles.set(ind.id, el);
  }
}

function renderKpis() {
  const box = $("#kpis");
  if (!box) return;
  const zone = scopeZone();
  const entry = state.kpis.get(zone);
  const indicators = entry ? entry.row.indicators : [];
  const ids = indicators.map((i) => i.id).join(" ");
  // A different zone, or a reloaded indicator set: new tiles; otherwise update in place.
  if (box.dataset.zone !== zone || box.dataset.ids !== ids) {
    buildTiles(box, indicators);
    box.dataset.zone = zone; box.dataset.ids = ids;
    box.dataset.empty = indicators.length ? "false" : "true";
    if (!indicators.length) box.innerHTML = `<p class="kpi-empty">${esc(t("noKpis"))}</p>`;
  }
  if (!entry) return;
  box.dataset.ts = String(entry.row.ts);
  for (const ind of indicators) renderTile(state.tiles.get(ind.id), ind, entry.history[ind.id] || []);
  if (state.me && state.me.scope.level === "district") renderTitle(); // its name comes from the row
}

function renderTile(el, ind, history) {
  if (!el) return;
  const name = (isEn() ? ind.name_en : ind.name_vi) || ind.name_vi || ind.id;
  const band = ind.band || "none";
  setText(el.querySelector(".label"), name);
  const title = ind.period ? `${name} · ${t("period_" + ind.period)}` : name;
  if (el.title !== title) el.title = title;
  el.dataset.band = band; el.dataset.trend = ind.trend || ""; el.dataset.period = ind.period || ""; el.dataset.sector = ind.sector || "";
  el.style.setProperty("--band", BAND_COLOURS[band] || BAND_COLOURS.none);
  setText(el.querySelector(".num"), fmtValue(ind.value));
  setText(el.querySelector(".unit"), ind.value === null || ind.value === undefined ? "" : term(ind.unit));
  setText(el.querySelector(".target"), ind.target === null || ind.target === undefined ? "" : `${t("target")} ${fmtValue(ind.target)}`);
  const trend = el.querySelector(".trend");
  setText(trend, TREND_ARROWS[ind.trend] || "");
  const trendTitle = ind.trend ? t("trend_" + ind.trend) : "";
  if (trend.title !== trendTitle) trend.title = trendTitle;
  const category = el.querySelector(".category");
  setText(category, term(ind.label));
  if (category.dataset.colour !== (ind.colour || "")) { category.dataset.colour = ind.colour || ""; category.style.color = ind.colour || ""; }
  drawSpark(ind.id, el.querySelector(".spark"), history);
}

// One uPlot per tile, redrawn only when its history gained a point.
function drawSpark(id, el, history) {
  const last = history[history.length - 1];
  const key = `${history.length}:${last ? last.ts : ""}`;
  const existing = state.sparks[id];
  if (existing && existing.wfKey === key) return;
  const xs = history.map((p) => p.ts / 1000);
  const ys = history.map((p) => p.value ?? null);
  if (xs.length < 2 || ys.every((v) => v === null)) return;
  if (!existing) {
    const u = new uPlot({ width: el.clientWidth || 120, height: 22, cursor: { show: false }, legend: { show: false },
      axes: [{ show: false }, { show: false }], scales: { x: { time: false } },
      series: [{}, { stroke: "#58a6ff", width: 1.5, fill: "rgba(88,166,255,.15)", spanGaps: false }] }, [xs, ys], el);
    u.wfKey = key;
    state.sparks[id] = u;
  } else {
    existing.setData([xs, ys]);
    existing.wfKey = key;
  }
}

// For benchmarks and debugging from the console: the live state, read-only by convention.
window.__wf = { get markers() { return state.markers; }, get alerts() { return state.alerts; }, refreshAll: () => refreshAllMarkers() };

// ---- boot ------------------------------------------------------------------------------
applyLanguage();
if (state.token) { start().catch(() => showLogin()); } else { showLogin(); }
