// The alert feed and the alert detail: the list sorted by severity (critical first) then
// age (oldest first), each row with when it fired, its live age, its severity changes, who
// acknowledged it and the assignee (unacknowledged critical alerts older than 5 minutes
// marked overdue); new major and critical alerts announced (row and commune blink, an
// optional beep, muted with #mute); the detail panel with the timeline, updated live, and
// the operator actions (acknowledge with a note, comment, assign, resolve with a reason).
// Per delta the work is the alert's own: its station's and commune's indexes, one marker,
// one commune; the list is re-sorted once per animation frame, touching only moved rows.
"use strict";

Object.assign(I18N.vi, {
  ackNote: "Xác nhận kèm ghi chú", comment: "Ghi chú", assign: "Giao việc", confirm: "Xác nhận", cancel: "Huỷ",
  notePlaceholder: "Ghi chú (không bắt buộc)", commentPlaceholder: "Nội dung ghi chú", reasonPlaceholder: "Lý do đóng cảnh báo (bắt buộc)",
  resolveQuestion: "Đóng cảnh báo này? Nếu điều kiện vẫn còn, cảnh báo sẽ phát sinh lại.", reasonRequired: "Cần nhập lý do",
  commentRequired: "Cần nhập nội dung", chooseAssignee: "Chọn người nhận", noAssignees: "Không có ai nhận được cảnh báo này",
  loading: "Đang tải…", actionFailed: "Không thực hiện được", assignedTo: "giao cho", ackBy: "xác nhận bởi", firedAt: "phát sinh",
  severityLabel: "Mức độ", stateWord: "Trạng thái", ruleWord: "Quy tắc", placeWord: "Địa bàn", stationWord: "Trạm",
  timeline: "Diễn biến", ackNoteShort: "+ ghi chú", resolveTitle: "Đóng cảnh báo", overdue: "quá 5 phút chưa xác nhận", moreAlerts: "cảnh báo nữa (mới hơn) không hiện: lọc theo mức hoặc khu vực để xem",
  mute: "Tắt âm báo", unmute: "Bật âm báo", soundOn: "có âm báo", soundOff: "tắt âm báo",
  ev_fired: "Phát sinh", ev_escalated: "Đổi mức độ", ev_acknowledged: "Đã xác nhận", ev_commented: "Ghi chú",
  ev_assigned: "Giao việc", ev_resolved: "Đã hết", ev_resolved_by_hand: "Đóng thủ công", ev_resolved_at_restart: "Đóng khi khởi động lại",
  ev_reopened: "Mở lại",
});
Object.assign(I18N.en, {
  ackNote: "Acknowledge with a note", comment: "Comment", assign: "Assign", confirm: "Confirm", cancel: "Cancel",
  notePlaceholder: "Note (optional)", commentPlaceholder: "Comment", reasonPlaceholder: "Why it is resolved (required)",
  resolveQuestion: "Resolve this alert? If the condition still holds it fires again.", reasonRequired: "A reason is required",
  commentRequired: "The comment is empty", chooseAssignee: "Choose who takes it", noAssignees: "Nobody else can take this alert",
  loading: "Loading…", actionFailed: "Not done", assignedTo: "assigned to", ackBy: "acknowledged by", firedAt: "fired",
  severityLabel: "Severity", stateWord: "State", ruleWord: "Rule", placeWord: "Area", stationWord: "Station",
  timeline: "Timeline", ackNoteShort: "+ note", resolveTitle: "Resolve the alert", overdue: "unacknowledged for over 5 minutes", moreAlerts: "more (newer) alerts not shown: filter by severity or area to see them",
  mute: "Mute the alarm", unmute: "Unmute the alarm", soundOn: "sound on", soundOff: "muted",
  ev_fired: "Fired", ev_escalated: "Severity changed", ev_acknowledged: "Acknowledged", ev_commented: "Comment",
  ev_assigned: "Assigned", ev_resolved: "Resolved", ev_resolved_by_hand: "Resolved by hand", ev_resolved_at_restart: "Resolved at restart",
  ev_reopened: "Reopened",
});

const OVERDUE_MS = 5 * 60000;
const KNOWN_EVENTS = ["fired", "escalated", "acknowledged", "commented", "assigned", "resolved", "resolved by hand", "resolved at restart", "reopened"];
const eventName = (ev) => KNOWN_EVENTS.includes(ev) ? t("ev_" + ev.replace(/ /g, "_")) : ev;
const rankOf = (sev) => SEVERITY_RANK[sev] || 0;
const isOpen = (a) => a.state !== "resolved";

// ---- indexes: open alerts per station and per commune ----------------------------------------
const alertIndex = { station: new Map(), zone: new Map() };

// The commune an alert belongs to: its own ward, else its station's, else the key itself.
function alertZone(a) {
  if (a.ward) return a.ward;
  const s = state.stations.get(a.key);
  if (s && s.ward) return s.ward;
  return state.zones.has(a.key) ? a.key : null;
}
function indexPut(map, key, a) {
  if (!key) return;
  let m = map.get(key);
  if (!m) { m = new Map(); map.set(key, m); }
  m.set(a.alert_id, a.severity);
}
function indexDrop(map, key, id) {
  const m = key && map.get(key);
  if (m) { m.delete(id); if (!m.size) map.delete(key); }
}
function worstOf(m) {
  let worst = null;
  if (m) for (const sev of m.values()) if (!worst || rankOf(sev) > rankOf(worst)) worst = sev;
  return worst;
}
const stationSeverity = (id) => worstOf(alertIndex.station.get(id));
const zoneSeverity = (id) => worstOf(alertIndex.zone.get(id));

// Stores a record, keeping the indexes; returns the record it replaced.
function upsertAlert(a) {
  const prev = state.alerts.get(a.alert_id);
  if (prev) { indexDrop(alertIndex.station, prev.key, prev.alert_id); indexDrop(alertIndex.zone, alertZone(prev), prev.alert_id); }
  state.alerts.set(a.alert_id, a);
  if (isOpen(a)) { indexPut(alertIndex.station, a.key, a); indexPut(alertIndex.zone, alertZone(a), a); }
  return prev;
}

// A snapshot (or a reset): everything replaced, then every marker and commune once.
function loadAlerts(list) {
  state.alerts.clear(); alertIndex.station.clear(); alertIndex.zone.clear();
  list.forEach(upsertAlert);
  refreshAllMarkers(); refreshAllZones();
  renderAlerts();
}

// A delta carries the alert without its past: `history` holds the lines this change added,
// starting at `history_from`. Appended to the lines this page holds; a page holding fewer
// (it missed one) keeps what it has and fetches the whole record.
function withHistory(a) {
  if (a.history_from === undefined) return a;
  const from = a.history_from;
  delete a.history_from;
  const prev = state.alerts.get(a.alert_id);
  const have = (prev && prev.history) || [];
  if (have.length >= from) {
    a.history = have.slice(0, from).concat(a.history || []);
  } else {
    a.history = have;
    refetchAlert(a.alert_id);
  }
  return a;
}

// Alert id → whether another gap was seen while its fetch was in flight (fetch again).
const refetching = new Map();
async function refetchAlert(id) {
  if (refetching.has(id)) { refetching.set(id, true); return; }
  refetching.set(id, false);
  try { applyActionResult(await api(`/api/alerts/${encodeURIComponent(id)}`)); }
  catch (e) { console.warn("alert", id, e.message); }
  const again = refetching.get(id);
  refetching.delete(id);
  if (again) refetchAlert(id);
}

// A delta: one alert; its marker and commune (and the previous ones if it moved).
function onAlertDelta(a) {
  noteArrived(a.alert_id);
  a = withHistory(a);
  const prev = upsertAlert(a);
  refreshMarker(a.key);
  const zone = alertZone(a);
  if (zone) refreshZone(zone);
  if (prev && prev.key !== a.key) refreshMarker(prev.key);
  if (prev && alertZone(prev) !== zone) refreshZone(alertZone(prev));
  // New (or newly worse, or back) and at least major: announced.
  if (a.state === "firing" && rankOf(a.severity) >= SEVERITY_RANK.major
      && (!prev || !isOpen(prev) || rankOf(prev.severity) < rankOf(a.severity))) announce(a);
  scheduleAlerts();
  if (state.detailAlert === a.alert_id) updateAlertDetail(a);
}

// After an operator's action (or a fetch): the answer is the whole record (no
// announcement). An answer older than what deltas already brought (a shorter history) is
// dropped: the page keeps the newer state.
function applyActionResult(a) {
  const held = state.alerts.get(a.alert_id);
  if (held && (held.history || []).length > (a.history || []).length) return;
  upsertAlert(a);
  refreshMarker(a.key);
  const zone = alertZone(a);
  if (zone) refreshZone(zone);
  scheduleAlerts();
  if (state.detailAlert === a.alert_id) updateAlertDetail(a);
}

// ---- announcements: flash and beep -------------------------------------------------------
const flashing = new Map(); // alert id → until (ms)
const alertSound = { muted: localStorage.getItem("wf-mute") === "1", ctx: null, last: 0, count: 0 };
// Announced alerts, the newest 100: { id, at } (for tests: `__wf.announced()`).
const announced = [];

function announce(a) {
  flashing.set(a.alert_id, Date.now() + FLASH_MS);
  announced.push({ id: a.alert_id, at: Date.now() });
  if (announced.length > 100) announced.shift();
  const zone = alertZone(a);
  if (zone) flashZone(zone);
  startBlinking();
  beep(a.severity);
}

// The flash is a blink: every flashing row and commune switched on and off together by one
// timer, twice a second, for 3 s. (It was a CSS animation: that repaints every frame, and
// without a GPU a flood's flashing rows took a core from the pipeline; docs/performance.md,
// "Sensor to screen".)
const FLASH_MS = 3000, BLINK_MS = 500;
const blink = { on: false, timer: null };
function startBlinking() {
  if (blink.timer) return;
  blink.on = true;
  blink.timer = setInterval(() => { blink.on = !blink.on; applyBlink(); }, BLINK_MS);
  applyBlink();
}
function applyBlink() {
  const now = Date.now();
  for (const [id, until] of flashing) if (until <= now) flashing.delete(id);
  for (const li of $("#alerts").children) li.classList.toggle("flash", rowLit(li.dataset.id, now));
  const zones = blinkZones(blink.on, now); // map.js
  if (!flashing.size && !zones) { clearInterval(blink.timer); blink.timer = null; blink.on = false; }
}
// Is an alert's row lit now (announced under 3 s ago, in the blink's on phase)?
const rowLit = (id, now) => blink.on && (flashing.get(id) || 0) > now;

// A short tone (two more for critical) from a WebAudio oscillator; at most one a second.
function beep(sev) {
  if (alertSound.muted || state.silent) return;
  const now = Date.now();
  if (now - alertSound.last < 1000) return;
  alertSound.last = now;
  alertSound.count++;
  try {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    const ctx = alertSound.ctx || (alertSound.ctx = new Ctx());
    if (ctx.state === "suspended") ctx.resume().catch(() => {});
    const tones = sev === "critical" ? 3 : 1;
    for (let i = 0; i < tones; i++) {
      const osc = ctx.createOscillator(), gain = ctx.createGain();
      const t0 = ctx.currentTime + i * 0.3;
      osc.type = "sine"; osc.frequency.value = sev === "critical" ? 880 : 660;
      gain.gain.setValueAtTime(0.0001, t0);
      gain.gain.exponentialRampToValueAtTime(0.3, t0 + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t0 + 0.22);
      osc.connect(gain).connect(ctx.destination);
      osc.start(t0); osc.stop(t0 + 0.25);
    }
  } catch (e) { /* no audio on this screen */ }
}

function renderMute() {
  const b = $("#mute");
  if (!b) return;
  b.dataset.muted = String(alertSound.muted);
  b.setAttribute("aria-pressed", String(alertSound.muted));
  b.textContent = `♪ ${t(alertSound.muted ? "soundOff" : "soundOn")}`;
  b.title = t(alertSound.muted ? "unmute" : "mute");
  b.setAttribute("aria-label", b.title);
}
$("#mute").addEventListener("click", () => {
  alertSound.muted = !alertSound.muted;
  localStorage.setItem("wf-mute", alertSound.muted ? "1" : "0");
  // A click is the gesture browsers want before they play sound.
  if (!alertSound.muted && alertSound.ctx && alertSound.ctx.state === "suspended") alertSound.ctx.resume().catch(() => {});
  renderMute();
});

// ---- the list -------------------------------------------------------------------------------
let alertsPending = false;
function scheduleAlerts() {
  if (alertsPending) return;
  alertsPending = true;
  const run = () => { if (alertsPending) { alertsPending = false; renderAlerts(); } };
  requestAnimationFrame(run);
  setTimeout(run, 250); // a hidden tab gets no animation frames
}

function renderAlertCount() {
  const el = $("#alert-count");
  if (!el) return;
  let open = 0;
  if (wsOnline()) for (const a of state.alerts.values()) if (isOpen(a)) open++;
  setText(el, wsOnline() ? `(${open})` : "(?)");
  el.dataset.count = wsOnline() ? String(open) : "?";
}

// Worst first, then the oldest. (Newest first was tried, with the flash animated and with
// the blink: in the sensor-to-screen burst every new row then moves every visible row, and
// those repaints took the pipeline's core; docs/performance.md.) Beyond MAX_ROWS a line
// says how many more.
const alertOrder = (a, b) => (a.state === "resolved") - (b.state === "resolved") || rankOf(b.severity) - rankOf(a.severity)
  || (a.fired_at || 0) - (b.fired_at || 0) || (a.alert_id < b.alert_id ? -1 : 1);

// The severities an alert went through (fired, escalated, reopened entries: "major: …").
function severityTrail(a) {
  const trail = [];
  for (const h of a.history || []) {
    if (h.event !== "fired" && h.event !== "escalated" && h.event !== "reopened") continue;
    const sev = String(h.detail || "").split(":")[0];
    if (!SEVERITY_RANK[sev] || (trail.length && trail[trail.length - 1].sev === sev)) continue;
    trail.push({ sev, at: h.at });
  }
  return trail;
}

function isOverdue(a, now) {
  return a.state === "firing" && a.severity === "critical" && now - (a.fired_at || now) > OVERDUE_MS;
}

// A row's markup, kept per record (a delta brings a new record object): only changed
// alerts are formatted again, unless the language, the rules or the day changed.
const rowCache = new WeakMap();
function cachedRowHtml(a, canAct, context) {
  const hit = rowCache.get(a);
  if (hit && hit.context === context) return hit.html;
  const html = alertRowHtml(a, canAct);
  rowCache.set(a, { context, html });
  return html;
}

function alertRowHtml(a, canAct) {
  const zone = alertZone(a);
  const station = state.stations.has(a.key) ? stationName(a.key) : a.key;
  const trail = severityTrail(a);
  const trailHtml = trail.length > 1 ? ` · <span class="sev-trail">${trail.map((s) => `<span class="sev-${esc(s.sev)}">${esc(t(s.sev))}</span> ${esc(fmtClock(s.at))}`).join(" → ")}</span>` : "";
  const ack = a.acknowledged;
  const ackHtml = ack ? ` · <span class="ack-info">✓ ${esc(ack.by)} ${esc(fmtClock(ack.at))}${ack.note ? ` — “${esc(ack.note)}”` : ""}</span>` : "";
  const assignee = a.assignee ? ` · <span class="assignee">${esc(t("assignedTo"))} ${esc(a.assignee)}</span>` : "";
  const actions = !canAct ? "" : (a.state === "firing" ? `<button class="ack-button">${esc(t("ack"))}</button><button class="ack-note-button" title="${esc(t("ackNote"))}">${esc(t("ackNoteShort"))}</button>` : "")
    + (isOpen(a) ? `<button class="resolve-button">${esc(t("resolve"))}</button>` : "");
  return `<div class="bar"></div><div class="body"><div class="msg">${isExercise(a) ? exerciseMark() + " " : ""}${esc(a.message)}</div>
    <div class="meta"><div class="meta-line"><span class="sev sev-${esc(a.severity)}">${esc(t(a.severity))}</span> · <span class="alert-state">${esc(t(a.state))}</span> · <span class="rule-name">${esc(ruleName(a.rule))}</span> · <span class="station-name">${esc(station)}</span>${zone ? ` · <span class="zone-name">${esc(zoneName(zone))}</span>` : ""}</div>
    <div class="meta-line"><span class="fired" title="${esc(t("firedAt"))}">${esc(fmtClock(a.fired_at || a.updated_at))}</span> · <span class="age" data-fired-at="${a.fired_at || a.updated_at}"></span>${trailHtml}${ackHtml}${assignee}</div></div></div>
    <div class="actions">${actions}</div>`;
}

// When each alert's row was first drawn (epoch ms, sub-millisecond), for the
// sensor-to-screen benchmark (benches/screen): the newest 1,000 only.
const rowsDrawn = new Map();
const noteDrawn = (id) => stampFirst(rowsDrawn, id);
// When each alert's first delta reached the page (same clock, same bound), so the benchmark
// can tell the pipeline's and the socket's share from the page's.
const deltasArrived = new Map();
const noteArrived = (id) => stampFirst(deltasArrived, id);

// Keeps the first time `id` was seen in `stamps` (epoch ms with a fraction), the newest 1,000.
function stampFirst(stamps, id) {
  if (stamps.has(id)) return;
  stamps.set(id, performance.timeOrigin + performance.now());
  if (stamps.size > 1000) stamps.delete(stamps.keys().next().value);
}

// Rows the list draws at most (the count says how many there are).
const MAX_ROWS = 200;

function renderAlerts() {
  const list = $("#alerts");
  if (!list) return;
  renderAlertCount();
  const showResolved = $("#show-resolved").checked;
  const items = [];
  for (const a of state.alerts.values()) if (showResolved || isOpen(a)) items.push(a);
  items.sort(alertOrder);
  const hidden = Math.max(0, items.length - MAX_ROWS);
  if (hidden) items.length = MAX_ROWS;
  const existing = new Map();
  for (const li of list.children) existing.set(li.dataset.id, li);
  const canAct = mayAct();
  const now = Date.now();
  const context = `${state.lang}|${canAct}|${state.rules.size}|${state.stations.size}|${new Date().toDateString()}`;
  items.forEach((a, i) => {
    let li = existing.get(a.alert_id);
    const html = cachedRowHtml(a, canAct, context);
    if (!li) { li = document.createElement("li"); li.className = "alert-item" + (isExercise(a) ? " exercise" : ""); li.dataset.id = a.alert_id; noteDrawn(a.alert_id); }
    if (li.dataset.html !== html) {
      li.innerHTML = html; li.dataset.html = html;
      const age = li.querySelector(".age");
      age.textContent = fmtAge(now - Number(age.dataset.firedAt));
    }
    li.dataset.rule = a.rule; li.dataset.key = a.key; li.dataset.state = a.state; li.dataset.severity = a.severity;
    li.dataset.firedAt = String(a.fired_at || "");
    li.classList.toggle("overdue", isOverdue(a, now));
    li.title = li.classList.contains("overdue") ? t("overdue") : "";
    li.classList.toggle("flash", rowLit(a.alert_id, now));
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
    existing.delete(a.alert_id);
  });
  existing.forEach((li) => li.remove());
  let more = $("#alerts-more");
  if (hidden && !more) { more = document.createElement("p"); more.id = "alerts-more"; list.after(more); }
  if (more) { more.hidden = !hidden; more.textContent = hidden ? `+ ${hidden} ${t("moreAlerts")}` : ""; }
}

// Every 15 s: the ages (app.js's tickAges) and the overdue marks, on the shown rows only.
setInterval(() => {
  const now = Date.now();
  for (const li of $("#alerts").children) {
    const a = state.alerts.get(li.dataset.id);
    if (a && isOverdue(a, now) !== li.classList.contains("overdue")) { li.classList.toggle("overdue"); li.title = isOverdue(a, now) ? t("overdue") : ""; }
  }
}, 15000);

$("#alerts").addEventListener("click", async (e) => {
  const li = e.target.closest(".alert-item");
  if (!li || state.wall) return;
  const id = li.dataset.id;
  try {
    if (e.target.classList.contains("ack-button")) {
      // One acknowledgement per click: the button waits for the answer.
      if (e.target.disabled) return;
      e.target.disabled = true;
      try { applyActionResult(await api(`/api/alerts/${encodeURIComponent(id)}/ack`, { method: "POST", body: "{}" })); }
      finally { e.target.disabled = false; }
    } else if (e.target.classList.contains("ack-note-button")) {
      await openAlert(id, "ack");
    } else if (e.target.classList.contains("resolve-button")) {
      await openAlert(id, "resolve");
    } else {
      await openAlert(id);
    }
  } catch (err) { alert(`${t("actionFailed")}: ${err.message}`); }
});

// ---- the detail: header, actions, timeline ----------------------------------------------------
async function openAlert(id, action) {
  showAlert(await api(`/api/alerts/${encodeURIComponent(id)}`));
  if (action) openAction(action);
}

// Builds the alert's detail (the station's drill-down below it when the key is a station).
function showAlert(a) {
  const sameAlert = state.detailAlert === a.alert_id && $("#detail-body .alert-detail");
  state.detailAlert = a.alert_id;
  state.detailRecord = a;
  $("#detail").hidden = false;
  $("#detail").dataset.view = "alert";
  if (!sameAlert) {
    $("#detail-body").innerHTML = `<div class="alert-detail" data-id="${esc(a.alert_id)}"><div class="alert-head"></div>
      <div class="act-bar"></div><div class="act-box"></div>
      <h3 class="timeline-title"></h3><table class="timeline"><tbody></tbody></table></div>`;
  }
  updateAlertDetail(a);
  showAlertRuns(a.alert_id); // its playbook runs beside it (runs.js)
  if (state.stations.has(a.key)) openStation(a.key, true).catch(() => {});
  else { state.detailStation = null; $("#detail-chart").innerHTML = ""; }
}

// Updates the header, the action buttons and the timeline in place: an open form (a note
// being typed) stays as it is, unless the alert was resolved meanwhile.
function updateAlertDetail(a) {
  const box = $("#detail-body .alert-detail");
  if (!box || box.dataset.id !== a.alert_id) return;
  state.detailRecord = a;
  box.dataset.state = a.state; box.dataset.severity = a.severity;
  const zone = alertZone(a);
  const trail = severityTrail(a);
  const ack = a.acknowledged;
  box.querySelector(".alert-head").innerHTML = `<h2>${isExercise(a) ? exerciseMark() + " " : ""}<span class="sev sev-${esc(a.severity)}">${esc(t(a.severity))}</span> ${esc(a.message)}</h2>
    <p class="alert-facts"><b class="alert-state">${esc(t(a.state))}</b> · ${esc(t("ruleWord"))}: ${esc(ruleName(a.rule))} <small>${esc(a.rule)}</small>
    · ${esc(t("stationWord"))}: ${esc(stationName(a.key))} <small>${esc(a.key)}</small>${zone ? ` · ${esc(t("placeWord"))}: ${esc(zoneName(zone))}` : ""}</p>
    <p class="alert-facts">${esc(t("firedAt"))} ${esc(fmtClock(a.fired_at || a.updated_at))} · <span class="age" data-fired-at="${a.fired_at || a.updated_at}">${esc(fmtAge(Date.now() - (a.fired_at || a.updated_at)))}</span>
    ${trail.length > 1 ? ` · ${trail.map((s) => `<span class="sev-${esc(s.sev)}">${esc(t(s.sev))}</span> ${esc(fmtClock(s.at))}`).join(" → ")}` : ""}
    ${ack ? ` · <span class="ack-info">✓ ${esc(t("ackBy"))} ${esc(ack.by)} ${esc(fmtClock(ack.at))}${ack.note ? ` — “${esc(ack.note)}”` : ""}</span>` : ""}
    ${a.assignee ? ` · <span class="assignee">${esc(t("assignedTo"))} ${esc(a.assignee)}</span>` : ""}</p>`;
  const bar = box.querySelector(".act-bar");
  const buttons = !mayAct() || !isOpen(a) ? "" : (a.state === "firing" ? `<button class="act-ack">${esc(t("ack"))}</button>` : "")
    + `<button class="act-comment">${esc(t("comment"))}</button><button class="act-assign">${esc(t("assign"))}</button>`
    + `<button class="act-resolve">${esc(t("resolve"))}</button>`;
  if (bar.dataset.html !== buttons) { bar.innerHTML = buttons; bar.dataset.html = buttons; }
  // A form whose action no longer applies closes (acknowledged elsewhere, resolved).
  const form = box.querySelector(".act-box").dataset.action;
  if (form && (!mayAct() || !isOpen(a) || (form === "ack" && a.state !== "firing"))) closeAction();
  setText(box.querySelector(".timeline-title"), t("timeline"));
  const rows = (a.history || []).map((h) => `<tr class="timeline-row" data-event="${esc(h.event)}"><td class="tl-time">${esc(fmtClock(h.at))}</td>
    <td class="tl-event">${esc(eventName(h.event))} <small class="ev-code">${esc(h.event)}</small></td><td class="tl-by">${esc(h.by || "")}</td><td class="tl-detail">${esc(h.detail || "")}</td></tr>`).join("");
  const tbody = box.querySelector(".timeline tbody");
  if (tbody.dataset.html !== rows) { tbody.innerHTML = rows; tbody.dataset.html = rows; }
}

// The page's language changed: the open detail is drawn again (its form is kept open).
function refreshDetailLanguage() {
  if (state.detailAlert && state.detailRecord && $("#detail-body .alert-detail")) {
    const action = $("#detail-body .act-box").dataset.action;
    updateAlertDetail(state.detailRecord);
    if (action) openAction(action);
  }
  if (state.detailStation && typeof renderStationDetail === "function") renderStationDetail();
}

function closeDetail() {
  $("#detail").hidden = true; state.detailAlert = null; state.detailRecord = null;
  if (state.detailStation && state.ws && state.ws.readyState === 1) state.ws.send(JSON.stringify({ op: "unsubscribe", channel: "stations" }));
  state.detailStation = null; state.detailSeries = null; state.station = null; state.stationRequest = null;
  if (state.detailChart) { state.detailChart.destroy(); state.detailChart = null; }
  alertDetailClosed();
}

// ---- operator actions ----------------------------------------------------------------------
function closeAction() {
  const box = $("#detail-body .act-box");
  if (!box) return;
  box.innerHTML = ""; delete box.dataset.action;
  box.classList.remove("dialog");
}

// One form at a time (a single .confirm on the page): ack (optional note), comment,
// assign (a list of who may take it), resolve (a confirmation with a required reason).
async function openAction(action) {
  const a = state.detailRecord;
  const box = $("#detail-body .act-box");
  if (!a || !box || !mayAct() || !isOpen(a)) return;
  if (action === "ack" && a.state !== "firing") return;
  box.dataset.action = action;
  box.classList.toggle("dialog", action === "resolve");
  box.setAttribute("role", action === "resolve" ? "alertdialog" : "group");
  const buttons = `<div class="act-buttons"><button type="submit" class="confirm">${esc(t("confirm"))}</button> <button type="button" class="cancel">${esc(t("cancel"))}</button></div><p class="act-error" role="alert"></p>`;
  if (action === "ack") {
    box.innerHTML = `<form class="act-form" data-action="ack"><input class="note-input" maxlength="500" placeholder="${esc(t("notePlaceholder"))}" aria-label="${esc(t("notePlaceholder"))}">${buttons}</form>`;
  } else if (action === "comment") {
    box.innerHTML = `<form class="act-form" data-action="comment"><textarea class="comment-input" rows="2" maxlength="2000" placeholder="${esc(t("commentPlaceholder"))}" aria-label="${esc(t("commentPlaceholder"))}"></textarea>${buttons}</form>`;
  } else if (action === "assign") {
    box.innerHTML = `<form class="act-form" data-action="assign"><select class="assign-select" aria-label="${esc(t("chooseAssignee"))}"><option value="">${esc(t("loading"))}</option></select>${buttons}</form>`;
    fillAssignees(a, box.querySelector(".assign-select"));
  } else if (action === "resolve") {
    box.innerHTML = `<form class="act-form" data-action="resolve" novalidate><p class="dialog-title"><b>${esc(t("resolveTitle"))}</b></p><p>${esc(t("resolveQuestion"))}</p>
      <textarea class="resolve-reason" rows="2" required aria-required="true" maxlength="2000" placeholder="${esc(t("reasonPlaceholder"))}" aria-label="${esc(t("reasonPlaceholder"))}"></textarea>${buttons}</form>`;
  } else { closeAction(); return; }
  const field = box.querySelector("input, textarea, select");
  if (field) field.focus();
}

async function fillAssignees(a, select) {
  try {
    const body = await api(`/api/alerts/${encodeURIComponent(a.alert_id)}/assignees`);
    if (!select.isConnected) return;
    const people = body.assignees || [];
    select.innerHTML = `<option value="">${esc(t(people.length ? "chooseAssignee" : "noAssignees"))}</option>`
      + people.map((p) => `<option value="${esc(p.name)}"${p.name === a.assignee ? " selected" : ""}>${esc(p.name)} — ${esc(t("role_" + p.role))}</option>`).join("");
  } catch (err) {
    if (select.isConnected) select.closest(".act-form").querySelector(".act-error").textContent = `${t("actionFailed")}: ${err.message}`;
  }
}

$("#detail-body").addEventListener("click", (e) => {
  const b = e.target.closest("button");
  if (!b) return;
  for (const action of ["ack", "comment", "assign", "resolve"]) {
    if (b.classList.contains("act-" + action)) { openAction(action); return; }
  }
  if (b.classList.contains("cancel")) closeAction();
});

$("#detail-body").addEventListener("submit", async (e) => {
  const form = e.target.closest(".act-form");
  if (!form) return;
  e.preventDefault();
  const a = state.detailRecord;
  const error = form.querySelector(".act-error");
  const action = form.dataset.action;
  let path, body;
  if (action === "ack") {
    const note = form.querySelector(".note-input").value.trim();
    path = "ack"; body = note ? { note } : {};
  } else if (action === "comment") {
    const text = form.querySelector(".comment-input").value.trim();
    if (!text) { error.textContent = t("commentRequired"); return; }
    path = "comment"; body = { text };
  } else if (action === "assign") {
    const to = form.querySelector(".assign-select").value;
    if (!to) { error.textContent = t("chooseAssignee"); return; }
    path = "assign"; body = { to };
  } else if (action === "resolve") {
    const input = form.querySelector(".resolve-reason");
    const note = input.value.trim();
    if (!note) { error.textContent = t("reasonRequired"); input.setAttribute("aria-invalid", "true"); input.focus(); return; }
    path = "resolve"; body = { note };
  } else return;
  const confirm = form.querySelector(".confirm");
  confirm.disabled = true;
  try {
    const record = await api(`/api/alerts/${encodeURIComponent(a.alert_id)}/${path}`, { method: "POST", body: JSON.stringify(body) });
    closeAction();
    applyActionResult(record);
  } catch (err) {
    confirm.disabled = false;
    error.textContent = `${t("actionFailed")}: ${err.message}`;
  }
});
