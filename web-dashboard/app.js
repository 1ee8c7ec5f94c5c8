// Watchfloor wall-screen dashboard. Plain JS, no build step, no CDN: Leaflet (no tile
// layer: the map is the city's ward and district polygons) and uPlot are vendored.
// Everything shown is computed by the server; the page only renders what the WebSocket
// and REST APIs send, updating the one marker, row or tile that changed.
"use strict";

const I18N = {
  vi: { title: "Trung tâm điều hành", logout: "Đăng xuất", alerts: "Cảnh báo", showResolved: "hiện đã xử lý",
    login: "Đăng nhập", token: "Mã truy cập", loginButton: "Đăng nhập", online: "Đã kết nối", offline: "Mất kết nối — đang kết nối lại",
    ack: "Xác nhận", resolve: "Đóng", firing: "Đang cảnh báo", acknowledged: "Đã xác nhận", resolved: "Đã xử lý",
    activeAlerts: "Cảnh báo đang mở", onTime: "Trạm báo đúng hạn", compliance: "Tuân thủ xả thải", aqi: "VN_AQI",
    congestion: "Chỉ số ùn tắc", mtta: "TG xác nhận TB", mttr: "TG xử lý TB", history: "Lịch sử", badToken: "Mã không hợp lệ",
    noData: "chưa có dữ liệu", ok: "bình thường", critical: "nghiêm trọng", major: "cao", minor: "thấp", info: "thông tin" },
  en: { title: "Operations Centre", logout: "Log out", alerts: "Alerts", showResolved: "show resolved",
    login: "Log in", token: "Access token", loginButton: "Log in", online: "Connected", offline: "Disconnected — reconnecting",
    ack: "Acknowledge", resolve: "Resolve", firing: "Firing", acknowledged: "Acknowledged", resolved: "Resolved",
    activeAlerts: "Open alerts", onTime: "Stations on time", compliance: "Discharge compliance", aqi: "VN_AQI",
    congestion: "Congestion index", mtta: "Mean time to ack", mttr: "Mean time to resolve", history: "History", badToken: "Unknown token",
    noData: "no data", ok: "normal", critical: "critical", major: "major", minor: "minor", info: "info" },
};
const SEVERITY_RANK = { info: 1, minor: 2, major: 3, critical: 4 };
const COLOURS = { critical: "#ff4d4f", major: "#ff9f1a", minor: "#f5d90a", info: "#58a6ff", ok: "#3fb950", none: "#6e7681" };

const state = {
  lang: localStorage.getItem("wf-lang") || "vi",
  token: sessionStorage.getItem("wf-token"),
  me: null, ws: null, seq: {}, alerts: new Map(), stations: new Map(), markers: new Map(),
  kpis: new Map(), sparks: {}, detailStation: null, detailChart: null, retry: 1000, map: null,
};
const t = (key) => (I18N[state.lang] || I18N.vi)[key] || key;
const $ = (sel) => document.querySelector(sel);

function applyLanguage() {
  document.documentElement.lang = state.lang;
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  $("#lang").textContent = state.lang === "vi" ? "EN" : "VI";
  setConnection(state.ws && state.ws.readyState === 1);
  renderAlerts(); renderKpis(); renderLegend();
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
  $("#who").textContent = `${state.me.name} · ${state.me.role} · ${state.me.scope.level}${state.me.scope.id ? ": " + [].concat(state.me.scope.id).join(", ") : ""}`;
  await buildMap();
  connect();
}

// ---- map -----------------------------------------------------------------------------
async function buildMap() {
  if (state.map) return;
  const zones = await api("/api/zones");
  const map = L.map("map", { zoomControl: true, attributionControl: false, preferCanvas: true });
  state.map = map;
  const layer = L.geoJSON(zones, {
    style: (f) => f.properties.level === "district"
      ? { color: "#8b949e", weight: 3, fill: false }
      : { color: "#30363d", weight: 1, fillColor: "#12202b", fillOpacity: 0.9 },
  }).addTo(map);
  zones.features.filter((f) => f.properties.level === "ward").forEach((f) => {
    const centre = L.geoJSON(f).getBounds().getCenter();
    L.marker(centre, { interactive: false, icon: L.divIcon({ className: "zone-label", html: f.properties.name, iconSize: null }) }).addTo(map);
  });
  map.fitBounds(layer.getBounds(), { padding: [10, 10] });
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
      else if (msg.channel === "kpis") { msg.data.forEach((z) => updateKpi(z, true)); renderKpis(); }
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
function scopeZone() {
  if (!state.me) return "city";
  if (state.me.scope.level === "city") return "city";
  // A cluster centre (several communes) shows its first commune's tiles.
  const id = state.me.scope.id;
  return Array.isArray(id) ? id[0] : id;
}

function updateKpi(z, withHistory) {
  const prev = state.kpis.get(z.zone);
  const history = withHistory ? (z.history || []) : (prev ? prev.history : []);
  const last = history[history.length - 1];
  if (!withHistory && (!last || z.ts - last.ts >= 60000)) {
    const f = z.figures;
    history.push({ ts: z.ts, active: Object.values(f.active_alerts).reduce((x, y) => x + y, 0), on_time: f.stations_on_time_pct, aqi: f.aqi, congestion: f.congestion_index });
    if (history.length > 120) history.shift();
  }
  state.kpis.set(z.zone, { ...z, history });
}

const fmt = (v, digits = 0, unit = "") => (v === null || v === undefined) ? "—" : `${Number(v).toFixed(digits)}${unit}`;
const fmtDuration = (s) => (s === null || s === undefined) ? "—" : (s < 90 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`);

function renderKpis() {
  const z = state.kpis.get(scopeZone());
  const box = $("#kpis");
  if (!z || !box) return;
  const f = z.figures;
  const active = f.active_alerts || {};
  const tiles = [
    ["active", t("activeAlerts"), Object.values(active).reduce((x, y) => x + y, 0), `<span style="color:${COLOURS.critical}">${active.critical || 0}</span> · <span style="color:${COLOURS.major}">${active.major || 0}</span> · <span style="color:${COLOURS.minor}">${active.minor || 0}</span>`, "active"],
    ["ontime", t("onTime"), fmt(f.stations_on_time_pct, 0, " %"), z.name, "on_time"],
    ["compliance", t("compliance"), fmt(f.discharge_compliance_pct, 0, " %"), "QCVN 40", null],
    ["aqi", t("aqi"), fmt(f.aqi), `<span style="color:${f.aqi_colour || "inherit"}">${esc(f.aqi_category || "")}</span>`, "aqi"],
    ["congestion", t("congestion"), fmt(f.congestion_index), "0–100", "congestion"],
    ["times", `${t("mtta")} / ${t("mttr")}`, `${fmtDuration(f.mtta_s)}`, fmtDuration(f.mttr_s), null],
  ];
  if (!box.children.length) {
    box.innerHTML = tiles.map(([id]) => `<div class="kpi" id="kpi-${id}"><div class="label"></div><div class="value"></div><div class="sub"></div><div class="spark"></div></div>`).join("");
  }
  tiles.forEach(([id, label, value, sub, series]) => {
    const el = $(`#kpi-${id}`);
    el.querySelector(".label").textContent = label;
    el.querySelector(".value").textContent = value;
    el.querySelector(".sub").innerHTML = sub;
    if (id === "aqi") el.querySelector(".value").style.color = f.aqi_colour || "";
    if (series) drawSpark(id, el.querySelector(".spark"), z.history, series);
  });
}

function drawSpark(id, el, history, field) {
  const xs = history.map((p) => p.ts / 1000);
  const ys = history.map((p) => p[field] ?? null);
  if (xs.length < 2) return;
  if (!state.sparks[id]) {
    state.sparks[id] = new uPlot({ width: el.clientWidth || 160, height: 34, cursor: { show: false }, legend: { show: false },
      axes: [{ show: false }, { show: false }], scales: { x: { time: false } },
      series: [{}, { stroke: "#58a6ff", width: 2, fill: "rgba(88,166,255,.15)" }] }, [xs, ys], el);
  } else {
    state.sparks[id].setData([xs, ys]);
  }
}

// For benchmarks and debugging from the console: the live state, read-only by convention.
window.__wf = { get markers() { return state.markers; }, get alerts() { return state.alerts; }, refreshAll: () => refreshAllMarkers() };

// ---- boot ------------------------------------------------------------------------------
applyLanguage();
if (state.token) { start().catch(() => showLogin()); } else { showLogin(); }
