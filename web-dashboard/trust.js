// Trust signals and wall mode. Data freshness: GET /api/status every 15 s, one chip per
// station kind in #freshness (stale after 10 minutes, 2 for traffic). Restarts: the server's
// epoch (in /api/me, the WebSocket welcome and /api/status); another one than the page's
// first means the server restarted: the page drops its alerts and KPIs, subscribes again
// for fresh snapshots and says so in #banner until dismissed; #banner also lists why the
// centre is degraded. Wall mode (/?wall=1[&token=…][&rotate=s|&zone=id][&lang=en][&sound=0]):
// larger type, no buttons or forms, the token kept for reloads and removed from the URL,
// the map cycling through the communes (or fixed on one).
"use strict";

Object.assign(I18N.vi, {
  restarted: "Máy chủ đã khởi động lại lúc {time} — dữ liệu đã được tải lại", degraded: "Hệ thống đang hoạt động không bình thường:",
  dismiss: "Đã biết", freshness: "Độ mới của dữ liệu theo loại trạm", freshTitle: "{kind}: bản tin cuối lúc {time}", staleSuffix: "quá cũ",
  chip_discharge: "Nước thải", chip_air: "Không khí", chip_water_level: "Mực nước", chip_water_quality: "Nước mặt", chip_rainfall: "Mưa",
  chip_traffic: "Giao thông", chip_weather: "Thời tiết", chip_emission: "Khí thải", chip_camera: "Camera", chip_indicator: "Chỉ số",
});
Object.assign(I18N.en, {
  restarted: "The server restarted at {time} — data reloaded", degraded: "The centre is degraded:",
  dismiss: "Dismiss", freshness: "Data freshness by station kind", freshTitle: "{kind}: last message at {time}", staleSuffix: "stale",
  chip_discharge: "Wastewater", chip_air: "Air", chip_water_level: "Water level", chip_water_quality: "Water quality", chip_rainfall: "Rain",
  chip_traffic: "Traffic", chip_weather: "Weather", chip_emission: "Emission", chip_camera: "Cameras", chip_indicator: "Indicators",
});

const STALE_MS = { traffic: 2 * 60000 };
const STALE_DEFAULT_MS = 10 * 60000;
const trust = { status: null, receivedAt: 0, restart: null, degradedDismissed: null, started: false };

// ---- epoch: restarts ----------------------------------------------------------------------
// Remembers the first epoch; another one resets the live state. Returns whether it did.
function noteEpoch(epoch, source, startedAt) {
  if (!epoch) return false;
  if (!state.epoch) { state.epoch = epoch; return false; }
  if (epoch === state.epoch) {
    if (startedAt && trust.restart && trust.restart.epoch === epoch && trust.restart.at !== startedAt) { trust.restart.at = startedAt; renderBanner(); }
    return false;
  }
  state.epoch = epoch;
  trust.restart = { epoch, at: startedAt || Date.now(), dismissed: false };
  if (state.wall) setTimeout(() => { if (trust.restart && trust.restart.epoch === epoch) { trust.restart.dismissed = true; renderBanner(); } }, 15 * 60000);
  resetLive();
  // Learnt from /api/status while a socket is open: reconnect, so it subscribes afresh.
  if (source !== "welcome" && state.ws) dropSocket();
  if (!startedAt && state.started) pollStatus();
  renderBanner();
  return true;
}

// ---- /api/status ------------------------------------------------------------------------------
async function pollStatus() {
  try {
    const s = await api("/api/status");
    trust.status = s; trust.receivedAt = Date.now();
    noteEpoch(s.epoch, "status", s.started_at);
    renderTrust();
  } catch (e) { renderFreshness(); /* the chips keep ageing while the server is away */ }
}

function startTrust() {
  if (trust.started) return;
  trust.started = true;
  pollStatus();
  setInterval(pollStatus, 15000);
  setInterval(renderFreshness, 10000);
  startWallView();
}

function renderTrust() { renderFreshness(); renderBanner(); }

function renderFreshness() {
  const box = $("#freshness");
  if (!box) return;
  box.title = t("freshness");
  box.setAttribute("aria-label", t("freshness"));
  const s = trust.status;
  if (!s) { box.innerHTML = ""; return; }
  const elapsed = Date.now() - trust.receivedAt;
  const html = (s.freshness || []).map((f) => {
    const age = (f.age_s || 0) * 1000 + elapsed;
    const stale = age > (STALE_MS[f.kind] || STALE_DEFAULT_MS);
    const known = typeof (I18N[state.lang] || I18N.vi)["chip_" + f.kind] === "string";
    const name = known ? t("chip_" + f.kind) : f.kind;
    const title = tf("freshTitle", { kind: name, time: fmtClock(f.last_ts) }) + (stale ? ` — ${t("staleSuffix")}` : "");
    return `<span class="fresh-chip" data-kind="${esc(f.kind)}" data-stale="${stale}" title="${esc(title)}">${esc(name)} <b>${esc(fmtAge(age, true))}</b></span>`;
  }).join("");
  if (box.dataset.html !== html) { box.innerHTML = html; box.dataset.html = html; }
}

function renderBanner() {
  const el = $("#banner");
  if (!el) return;
  const reasons = (trust.status && trust.status.degraded) || [];
  const key = reasons.join("\n");
  const restart = trust.restart && !trust.restart.dismissed;
  const degraded = reasons.length > 0 && trust.degradedDismissed !== key;
  if (!restart && !degraded) { el.hidden = true; el.dataset.kind = ""; el.innerHTML = ""; return; }
  el.hidden = false;
  el.dataset.kind = restart ? "restart" : "degraded";
  const time = restart ? new Date(trust.restart.at).toLocaleTimeString(locale(), { hour: "2-digit", minute: "2-digit", hour12: false }) : "";
  el.innerHTML = `${restart ? `<p class="banner-restart">${esc(tf("restarted", { time }))}</p>` : ""}
    ${degraded ? `<div class="banner-degraded"><b>${esc(t("degraded"))}</b><ul>${reasons.map((r) => `<li>${esc(r)}</li>`).join("")}</ul></div>` : ""}
    <button type="button" class="dismiss">${esc(t("dismiss"))}</button>`;
}

// Dismissing clears the message shown first: the restart, then the degraded reasons (until
// they change).
$("#banner").addEventListener("click", (e) => {
  if (!e.target.closest(".dismiss")) return;
  if (trust.restart && !trust.restart.dismissed) trust.restart.dismissed = true;
  else trust.degradedDismissed = ((trust.status && trust.status.degraded) || []).join("\n");
  renderBanner();
});

// ---- wall mode ---------------------------------------------------------------------------------
// Read once at boot, before the stored token is used.
function applyWallMode() {
  const p = new URLSearchParams(location.search);
  const token = p.get("token");
  if (token) {
    sessionStorage.setItem("wf-token", token);
    state.token = token;
    p.delete("token");
    const query = p.toString();
    window.history.replaceState(null, "", location.pathname + (query ? "?" + query : "") + location.hash);
  }
  if (p.get("lang") === "en" || p.get("lang") === "vi") state.lang = p.get("lang");
  state.wall = p.get("wall") === "1";
  if (!state.wall) return;
  document.body.classList.add("wall");
  state.silent = p.get("sound") === "0";
  state.wallRotate = Math.max(0, Number(p.get("rotate")) || 0);
  state.wallZone = p.get("zone");
}

// A fixed commune, or the account's communes (every commune for a city account) in turn.
function startWallView() {
  if (!state.wall || !state.map) return;
  if (state.wallZone) { showWallZone(state.wallZone); return; }
  if (!state.wallRotate) return;
  const list = state.ownZones && state.ownZones.length ? state.ownZones : [...state.zones.keys()];
  if (!list.length) return;
  let i = 0;
  showWallZone(list[0]);
  setInterval(() => { i = (i + 1) % list.length; showWallZone(list[i]); }, Math.max(2, state.wallRotate) * 1000);
}

function showWallZone(id) {
  fitZone(id);
  $("#map").dataset.wallZone = id;
  // A cluster centre's tiles follow the commune on the map.
  if (scopeZones().includes(id) && state.zone !== id) { state.zone = id; renderZoneSelect(); renderKpis(); }
}
