// Watchfloor wall-screen dashboard: the core. Plain JS, no build step, no CDN: Leaflet (no
// tile layer: the map is the city's commune/ward polygons and its base map) and uPlot are
// vendored. Everything shown is computed by the server; the page only renders what the
// WebSocket and REST APIs send, updating the one marker, row or tile that changed.
// This file: the language table and t(), the shared state and helpers, login, the
// WebSocket, the KPI tiles and the test hooks (window.__wf). The other files: map.js (map,
// markers, base map, commune fills), alerts.js (alert list, detail, operator actions),
// stations.js (station drill-down), trust.js (freshness, banners, restarts, wall mode),
// history.js and quality.js (the two full-screen panels), runs.js (playbook runs: the
// checklist beside an alert, the playbooks panel), drills.js (the drills panel, the drill
// mark, the after-action report). Boot runs once all are loaded.
"use strict";

const I18N = {
  vi: { title: "Trung tâm điều hành", logout: "Đăng xuất", alerts: "Cảnh báo", showResolved: "hiện đã xử lý",
    login: "Đăng nhập", token: "Mã truy cập", loginButton: "Đăng nhập", online: "Đã kết nối", offline: "Mất kết nối — đang kết nối lại",
    ack: "Xác nhận", resolve: "Đóng", firing: "Đang cảnh báo", acknowledged: "Đã xác nhận", resolved: "Đã xử lý",
    history: "Lịch sử", quality: "Chất lượng dữ liệu", badToken: "Mã không hợp lệ", serverDown: "Không kết nối được máy chủ — đang thử lại",
    noData: "chưa có dữ liệu", ok: "bình thường", critical: "nghiêm trọng", major: "cao", minor: "thấp", info: "thông tin",
    centreCity: "Trung tâm điều hành thành phố", centreDept: "Trung tâm điều hành — {unit}", centreArea: "Trung tâm điều hành {name}",
    target: "mục tiêu", trend_up: "tăng", trend_down: "giảm", trend_flat: "không đổi",
    period_live: "trực tiếp", period_hourly: "theo giờ", period_daily: "trong ngày", period_monthly: "trong tháng",
    zoneSelect: "Chọn xã, phường", noKpis: "chưa có chỉ số", closePanel: "Đóng", switchLang: "Tiếng Việt / English",
    role_viewer: "chỉ xem", role_integrator: "tích hợp", role_operator: "điều hành viên", role_admin: "quản trị", role_drill_leader: "điều hành diễn tập",
    scopeCity: "toàn thành phố", scopeDistrict: "quận (cũ) {name}",
    // Ages and times.
    ageNow: "< 1 phút", ageMin: "{m} phút", ageHour: "{h} giờ {m} phút", ageDay: "{d} ngày {h} giờ", ageSec: "{s} giây",
    // Terms the server sends in Vietnamese (VN_AQI categories, units): shown as they are.
    terms: {} },
  en: { title: "Operations Centre", logout: "Log out", alerts: "Alerts", showResolved: "show resolved",
    login: "Log in", token: "Access token", loginButton: "Log in", online: "Connected", offline: "Disconnected — reconnecting",
    ack: "Acknowledge", resolve: "Resolve", firing: "Firing", acknowledged: "Acknowledged", resolved: "Resolved",
    history: "History", quality: "Data quality", badToken: "Unknown token", serverDown: "Cannot reach the server — retrying",
    noData: "no data", ok: "normal", critical: "critical", major: "major", minor: "minor", info: "info",
    centreCity: "City operations centre", centreDept: "Operations centre — {unit}", centreArea: "{name} operations centre",
    target: "target", trend_up: "rising", trend_down: "falling", trend_flat: "steady",
    period_live: "live", period_hourly: "hourly", period_daily: "today", period_monthly: "this month",
    zoneSelect: "Choose a commune or ward", noKpis: "no indicators yet", closePanel: "Close", switchLang: "Tiếng Việt / English",
    role_viewer: "viewer", role_integrator: "integrator", role_operator: "operator", role_admin: "admin", role_drill_leader: "drill leader",
    scopeCity: "whole city", scopeDistrict: "former district {name}",
    ageNow: "< 1 min", ageMin: "{m} min", ageHour: "{h} h {m} min", ageDay: "{d} d {h} h", ageSec: "{s} s",
    terms: { "Tốt": "Good", "Trung bình": "Moderate", "Kém": "Poor", "Xấu": "Bad", "Rất xấu": "Very bad", "Nguy hại": "Hazardous",
      "cảnh báo": "alerts", "phút": "min", "giờ": "h", "ca": "cases", "trạm": "stations", "cơ sở": "facilities", "lượt": "times" } },
};
const SEVERITY_RANK = { info: 1, minor: 2, major: 3, critical: 4 };
const COLOURS = { critical: "#ff4d4f", major: "#ff9f1a", minor: "#f5d90a", info: "#58a6ff", ok: "#3fb950", none: "#6e7681" };

const state = {
  lang: localStorage.getItem("wf-lang") || "vi",
  token: sessionStorage.getItem("wf-token"),
  me: null, ws: null, seq: {}, alerts: new Map(), stations: new Map(), markers: new Map(), runs: new Map(),
  kpis: new Map(), sparks: {}, tiles: new Map(), zone: null, zones: new Map(), detailStation: null, detailChart: null,
  retry: 1000, map: null, zoneLabels: [], rules: new Map(),
  epoch: null, lastMessage: 0, wall: false, started: false, welcomed: false, silent: false,
};

// Every key t() is asked for, so a test can list those the current language lacks.
const i18nAsked = new Set();
const t = (key) => {
  i18nAsked.add(key);
  const table = I18N[state.lang] || I18N.vi;
  return typeof table[key] === "string" ? table[key] : key;
};
const untranslated = () => {
  const table = I18N[state.lang] || I18N.vi;
  return [...i18nAsked].filter((k) => typeof table[k] !== "string").sort();
};
// A template string with {name} placeholders filled in.
const tf = (key, vars) => t(key).replace(/\{(\w+)\}/g, (_, k) => vars[k] ?? "");
// A Vietnamese term from the server, in the page's language when the table knows it.
const term = (s) => (s && (I18N[state.lang] || I18N.vi).terms[s]) || s || "";
const setText = (el, text) => { if (el && el.textContent !== text) el.textContent = text; };
const $ = (sel) => document.querySelector(sel);
const isEn = () => state.lang === "en";
const locale = () => (isEn() ? "en-GB" : "vi-VN");
function esc(s) { return String(s ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c])); }

// ---- times and ages -------------------------------------------------------------------------
// Intl formatters are costly to build: one per language and pattern, kept.
const formatters = new Map();
function dateFormat(name, options) {
  const key = `${locale()}|${name}`;
  let f = formatters.get(key);
  if (!f) { f = new Intl.DateTimeFormat(locale(), options); formatters.set(key, f); }
  return f;
}
// HH:MM, with the day and month when it is not today.
function fmtClock(ms) {
  const hm = dateFormat("hm", { hour: "2-digit", minute: "2-digit", hour12: false }).format(ms);
  return new Date(ms).toDateString() === new Date().toDateString() ? hm : `${dateFormat("dm", { day: "2-digit", month: "2-digit" }).format(ms)} ${hm}`;
}
// "12 min", "2 h 5 min", "3 d 4 h"; seconds only when asked (freshness chips).
function fmtAge(ms, withSeconds) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return withSeconds ? tf("ageSec", { s }) : t("ageNow");
  const m = Math.floor(s / 60);
  if (m < 60) return tf("ageMin", { m });
  const h = Math.floor(m / 60);
  if (h < 24) return tf("ageHour", { h, m: m % 60 });
  return tf("ageDay", { d: Math.floor(h / 24), h: h % 24 });
}
// Every element showing an age keeps its start in data-fired-at (alerts) or data-since.
function tickAges() {
  const now = Date.now();
  document.querySelectorAll(".age[data-fired-at], .age[data-since]").forEach((el) => {
    const from = Number(el.dataset.firedAt || el.dataset.since);
    if (from) setText(el, fmtAge(now - from));
  });
}

function applyLanguage() {
  document.documentElement.lang = state.lang;
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  $("#lang").textContent = state.lang === "vi" ? "EN" : "VI";
  $("#lang").title = t("switchLang");
  $("#detail-close").title = t("closePanel");
  setConnection(state.ws && state.ws.readyState === 1);
  renderTitle(); renderWho(); renderZoneSelect();
  renderAlerts(); renderKpis(); renderLegend(); renderZoneLabels(); renderBaseLabels();
  renderMute(); renderTrust(); refreshDetailLanguage(); refreshRuns(); tickAges();
}

// ---- the centre: title, account line ----------------------------------------------------
// A commune's name from the zones file (a legacy district's from its KPI row), else its id.
function zoneName(id) {
  const p = state.zones.get(id);
  if (p) return (isEn() && p.name_en) || p.name || id;
  const row = state.kpis.get(id);
  if (row) return (isEn() && row.row.name_en) || row.row.name || id;
  return id;
}

// A rule's description (GET /api/rules), else its id made readable.
function ruleName(id) {
  const r = state.rules.get(id);
  if (r && r.description) return r.description;
  const s = String(id || "").replace(/_/g, " ");
  return s.charAt(0).toUpperCase() + s.slice(1);
}

// A station's name (the registry's), else the key as it is.
function stationName(id) {
  const s = state.stations.get(id);
  return s && s.name ? s.name : id;
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
  const scope = me.scope || {};
  const area = scope.level === "city" ? t("scopeCity")
    : scope.level === "district" ? tf("scopeDistrict", { name: zoneName(scope.id) })
    : [].concat(scope.id || []).map(zoneName).join(", ");
  const sectors = me.sectors && me.sectors.length ? ` · <span class="who-sectors">${esc(sectorNames("name"))}</span>` : "";
  $("#who").innerHTML = `${esc(me.name)} · ${esc(t("role_" + me.role))} · ${esc(area)}${sectors}`;
}

// Whether the WebSocket is up; while it is down the alert count is "?" and the list greyed.
function setConnection(online) {
  const el = $("#conn-status");
  el.dataset.state = online ? "online" : "offline";
  el.textContent = online ? t("online") : t("offline");
  $("#alerts").classList.toggle("stale", !online);
  renderAlertCount();
}
const wsOnline = () => !!(state.ws && state.ws.readyState === 1 && state.welcomed);

// The operator controls are shown to accounts that may act, never on a wall screen.
const mayAct = () => !!(state.me && state.me.may_act && !state.wall);

async function api(path, options = {}) {
  const res = await fetch(path, { ...options, headers: { "Authorization": "Bearer " + state.token, "Content-Type": "application/json", ...(options.headers || {}) } });
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    const err = new Error(body.error || res.statusText);
    err.status = res.status;
    throw err;
  }
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
  catch (err) { showLogin(err.status === 401 || err.status === 403 ? t("badToken") : t("serverDown")); }
});
$("#logout").addEventListener("click", () => { sessionStorage.removeItem("wf-token"); location.reload(); });
$("#lang").addEventListener("click", () => { state.lang = state.lang === "vi" ? "en" : "vi"; localStorage.setItem("wf-lang", state.lang); applyLanguage(); });
// (Arrow functions: alerts.js, loaded after this file, defines these.)
$("#show-resolved").addEventListener("change", () => renderAlerts());
$("#detail-close").addEventListener("click", () => closeDetail());

async function start() {
  if (state.started) return;
  state.me = await api("/api/me");
  noteEpoch(state.me.epoch, "me");
  renderWho(); renderTitle();
  await buildMap();
  state.started = true;
  renderTitle(); renderWho(); renderZoneSelect(); renderKpis(); renderAlerts();
  startTrust();
  startDrills();
  connect();
}

// A stored token (a reload, a wall screen) logs in again; while the server cannot be
// reached it keeps trying instead of asking for a token.
function startWithStoredToken() {
  start().then(() => { $("#login").hidden = true; }).catch((err) => {
    if (err.status === 401 || err.status === 403) { sessionStorage.removeItem("wf-token"); showLogin(t("badToken")); return; }
    setConnection(false);
    setTimeout(startWithStoredToken, 5000);
  });
}

// ---- WebSocket -------------------------------------------------------------------------
function subscribe(ws, channel) {
  const sub = { op: "subscribe", channel };
  // The resume token: the position and the server run (epoch) it was counted in.
  if (state.seq[channel] !== undefined) { sub.since = state.seq[channel]; sub.epoch = state.epoch; }
  ws.send(JSON.stringify(sub));
}

function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  state.ws = ws; state.welcomed = false;
  ws.onopen = () => {
    ws.send(JSON.stringify({ op: "auth", token: state.token }));
  };
  ws.onmessage = (m) => {
    if (state.ws !== ws) return;
    state.lastMessage = Date.now();
    const msg = JSON.parse(m.data);
    if (msg.type === "welcome") {
      state.welcomed = true; state.retry = 1000;
      // Another epoch: the server restarted; the local state is dropped (seq too), so the
      // subscriptions below ask for fresh snapshots.
      noteEpoch(msg.epoch, "welcome");
      setConnection(true);
      subscribe(ws, "alerts"); subscribe(ws, "kpis"); subscribe(ws, "runs");
      if (state.detailStation) subscribeStation(state.detailStation);
    } else if (msg.type === "snapshot") {
      state.seq[msg.channel] = msg.seq;
      if (msg.channel === "alerts") loadAlerts(msg.data);
      else if (msg.channel === "runs") loadRuns(msg.data);
      else if (msg.channel === "kpis") { state.kpis.clear(); msg.data.forEach((z) => updateKpi(z, true)); renderKpis(); }
      else if (msg.channel === "stations") { msg.data.forEach(onReading); }
    } else if (msg.type === "resumed") {
      state.seq[msg.channel] = Math.max(state.seq[msg.channel] || 0, msg.seq);
    } else if (msg.type === "delta") {
      state.seq[msg.channel] = Math.max(state.seq[msg.channel] || 0, msg.seq);
      if (msg.channel === "alerts") onAlertDelta(msg.data);
      else if (msg.channel === "runs") onRunDelta(msg.data);
      else if (msg.channel === "kpis") { msg.data.forEach((z) => updateKpi(z, false)); renderKpis(); }
      else if (msg.channel === "stations") { onReading(msg.data); }
    } else if (msg.type === "error") {
      console.warn(msg.message);
      // A subscription refused by the rate limit: asked again when the server says.
      if (msg.retry_after && msg.channel) setTimeout(() => {
        if (state.ws !== ws || !state.welcomed) return;
        if (msg.channel !== "stations") subscribe(ws, msg.channel);
        else if (state.detailStation) subscribeStation(state.detailStation);
      }, msg.retry_after * 1000);
    }
  };
  ws.onclose = (ev) => {
    if (state.ws !== ws) return;
    // 4401: the token is no longer known (an account removed): log in again, do not retry.
    if (ev.code === 4401) { sessionStorage.removeItem("wf-token"); setConnection(false); showLogin(t("badToken")); return; }
    reconnectLater();
  };
}

function reconnectLater() {
  state.welcomed = false;
  setConnection(false);
  state.retry = Math.min(state.retry * 2, 15000);
  clearTimeout(state.reconnectTimer);
  state.reconnectTimer = setTimeout(connect, state.retry);
}

// A socket that stays silent (no heartbeat for 35 s: the server sends one every 10 s) is
// dropped and reopened rather than trusted.
setInterval(() => {
  if (state.ws && state.welcomed && Date.now() - state.lastMessage > 35000) dropSocket();
}, 5000);

// Closes the socket without waiting for its close handshake, and opens another.
function dropSocket() {
  const ws = state.ws;
  if (!ws) return; // already waiting to reconnect
  state.ws = null;
  ws.onclose = null; ws.onmessage = null;
  try { ws.close(); } catch (e) { /* already gone */ }
  reconnectLater();
}

// Drops every alert, run and KPI the page holds (the server restarted): the next
// subscriptions ask for fresh snapshots.
function resetLive() {
  state.seq = {};
  loadAlerts([]);
  loadRuns([]);
  state.kpis.clear();
  renderKpis();
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
    if (!indicators.length) box.innerHTML = `<p class="kpi-empty"></p>`;
  }
  setText(box.querySelector(".kpi-empty"), t("noKpis")); // in the page's language
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

// For benchmarks, tests and debugging from the console: the live state, read-only by
// convention (web-dashboard/README.md lists the hooks).
window.__wf = {
  get markers() { return state.markers; }, get alerts() { return state.alerts; }, get runs() { return state.runs; },
  refreshAll: () => refreshAllMarkers(),
  topMarker: () => topMarker(),
  zoneColour: (id) => zoneColour(id),
  epoch: () => state.epoch,
  untranslated: () => untranslated(),
  beeps: () => alertSound.count,
  announced: () => announced.map((a) => ({ ...a })),
  zoneLit: (id) => zoneLit(id),
  lang: () => state.lang,
  rowDrawnAt: (id) => rowsDrawn.get(id),
  deltaArrivedAt: (id) => deltasArrived.get(id),
  mapBounds: () => state.map.getBounds(),
};

// ---- boot: after every script of the page has loaded --------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  applyWallMode();
  applyLanguage();
  setInterval(tickAges, 15000);
  if (state.token) startWithStoredToken(); else showLogin();
});
