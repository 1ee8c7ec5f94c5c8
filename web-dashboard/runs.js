// Scenario playbooks on the wall screen: the runs of an alert beside its detail (#runs-side:
// the playbook's checklist in order, a parallel group's members indented, each step's
// status, its live due countdown, overdue steps in red, who did it, when, with what; the
// operator's actions on an active step: complete with the evidence it asks for, choose a
// branch, approve or reject, reassign, comment; the run's timeline), the "Playbooks" panel
// (#runs: the open runs in scope, and a form to start a manual playbook on a reported
// incident), live from the WebSocket's `runs` channel (app.js subscribes and hands the
// snapshot and deltas to loadRuns and onRunDelta). The server decides who may act; the page
// hides the controls from viewers, wall screens and steps that are someone else's, and
// shows any refusal's `error` inline. Uses app.js's helpers (api, t, tf, esc, $, state).
"use strict";

Object.assign(I18N.vi, {
  playbooks: "Kịch bản", runsTitle: "Kịch bản đang thực hiện", noRuns: "Không có kịch bản nào đang thực hiện",
  noAlertRuns: "Chưa có kịch bản nào cho cảnh báo này", startOnAlert: "Bắt đầu kịch bản cho cảnh báo này",
  startTitle: "Bắt đầu kịch bản cho sự cố được báo", pbWord: "Kịch bản", incidentTitle: "Tiêu đề sự cố",
  communeWord: "Xã, phường", startButton: "Bắt đầu", choosePlaybook: "Chọn kịch bản", subjectWord: "Sự cố",
  startedWord: "Bắt đầu", activeSteps: "Bước đang thực hiện", nextDueWord: "Hạn gần nhất", runFinished: "kết thúc lúc {time}",
  runStartedBy: "bắt đầu lúc {time} bởi {by}", runStartedAuto: "tự bắt đầu lúc {time}", runAwaitAllClear: "còn bước sau khi hết sự cố",
  exercise: "DIỄN TẬP", runTimeline: "Diễn biến kịch bản", runWhole: "cả kịch bản",
  st_pending: "chưa đến", st_active: "đang thực hiện", st_done: "xong", st_skipped: "không còn cần",
  kind_task: "Việc", kind_notify: "Thông báo", kind_wait: "Chờ", kind_decision: "Quyết định", kind_approval: "Phê duyệt", kind_parallel: "Song song",
  dueLeft: "còn {left}", dueOver: "quá hạn {over}", overdueWord: "quá hạn", doneBy: "{by} lúc {time}", skippedAt: "lúc {time}",
  forOperators: "điều hành viên xã, phường", forCityOperators: "điều hành viên thành phố", forAdmins: "quản trị thành phố",
  runComplete: "Hoàn thành", runApprove: "Phê duyệt", runReject: "Từ chối", runReassign: "Giao lại", runComment: "Ghi chú",
  runMore: "Giao lại, ghi chú", evNoteRequired: "Ghi chú (bắt buộc)", evNoteOptional: "Ghi chú (không bắt buộc)",
  evNumber: "Số liệu", evAttachment: "Số hiệu, số văn bản hoặc đường dẫn", evChoice: "Chọn kết quả", runCommentText: "Nội dung ghi chú",
  valueApproved: "đã phê duyệt", valueRejected: "từ chối",
  rev_run_started: "Bắt đầu kịch bản", rev_started: "Bắt đầu bước", rev_notified: "Đã gửi thông báo", rev_condition_met: "Đã đủ điều kiện",
  rev_completed: "Hoàn thành", rev_timed_out: "Hết thời gian chờ", rev_breached: "Quá hạn", rev_escalated: "Báo lên cấp trên",
  rev_alert_escalated: "Cảnh báo tăng mức", rev_alert_refired: "Cảnh báo phát sinh lại", rev_alert_resolved: "Cảnh báo đã hết",
  rev_skipped: "Không còn cần", rev_run_finished: "Kết thúc kịch bản", rev_chosen: "Đã chọn", rev_approved: "Đã phê duyệt",
  rev_rejected: "Từ chối phê duyệt", rev_reassigned: "Giao lại", rev_commented: "Ghi chú",
});
Object.assign(I18N.en, {
  playbooks: "Playbooks", runsTitle: "Playbooks in progress", noRuns: "No playbook in progress",
  noAlertRuns: "No playbook for this alert yet", startOnAlert: "Start a playbook on this alert",
  startTitle: "Start a playbook on a reported incident", pbWord: "Playbook", incidentTitle: "Incident title",
  communeWord: "Commune or ward", startButton: "Start", choosePlaybook: "Choose a playbook", subjectWord: "Incident",
  startedWord: "Started", activeSteps: "Steps in progress", nextDueWord: "Next due", runFinished: "finished at {time}",
  runStartedBy: "started at {time} by {by}", runStartedAuto: "started by itself at {time}", runAwaitAllClear: "steps follow the all-clear",
  exercise: "EXERCISE", runTimeline: "Playbook timeline", runWhole: "the run",
  st_pending: "not yet", st_active: "in progress", st_done: "done", st_skipped: "no longer needed",
  kind_task: "Task", kind_notify: "Notice", kind_wait: "Wait", kind_decision: "Decision", kind_approval: "Approval", kind_parallel: "In parallel",
  dueLeft: "{left} left", dueOver: "overdue by {over}", overdueWord: "overdue", doneBy: "{by} at {time}", skippedAt: "at {time}",
  forOperators: "the commune's operators", forCityOperators: "the city's operators", forAdmins: "the city's administrators",
  runComplete: "Mark done", runApprove: "Approve", runReject: "Reject", runReassign: "Reassign", runComment: "Comment",
  runMore: "Reassign, comment", evNoteRequired: "Note (required)", evNoteOptional: "Note (optional)",
  evNumber: "Number", evAttachment: "Unit number, document number or link", evChoice: "Choose the outcome", runCommentText: "Comment",
  valueApproved: "approved", valueRejected: "rejected",
  rev_run_started: "Playbook started", rev_started: "Step started", rev_notified: "Notice sent", rev_condition_met: "Condition met",
  rev_completed: "Done", rev_timed_out: "Wait timed out", rev_breached: "Overdue", rev_escalated: "Escalated",
  rev_alert_escalated: "Alert severity raised", rev_alert_refired: "Alert fired again", rev_alert_resolved: "Alert resolved",
  rev_skipped: "No longer needed", rev_run_finished: "Playbook finished", rev_chosen: "Chosen", rev_approved: "Approved",
  rev_rejected: "Approval refused", rev_reassigned: "Reassigned", rev_commented: "Comment",
});

const RUN_EVENTS = ["run_started", "started", "notified", "condition_met", "completed", "timed_out", "breached", "escalated",
  "alert_escalated", "alert_refired", "alert_resolved", "skipped", "run_finished", "chosen", "approved", "rejected", "reassigned", "commented"];
const runEventName = (ev) => RUN_EVENTS.includes(ev) ? t("rev_" + ev) : ev;
// What the side panel shows ({alert} or {run}), timelines fetched per run, the playbook
// list, the accounts a step can go to (per alert).
const runsUi = { side: null, timelines: new Map(), timelineTimers: new Map(), playbooks: null, assignees: new Map(), panelPending: false };

// A {vi, en} text in the page's language; a notice's placeholders filled from the subject.
const txt = (o) => (o ? o[state.lang] || o.vi || o.en || "" : "");
function fillText(s, run) {
  const subj = run.subject || {};
  const vars = { ...subj, severity: subj.severity ? t(subj.severity) : "", alert_id: run.alert_id || "", run: run.id, playbook: run.playbook };
  return String(s).replace(/\{(\w+)\}/g, (m, k) => (vars[k] !== undefined && vars[k] !== null ? String(vars[k]) : m));
}
const readable = (id) => String(id || "").replace(/_/g, " ");
function stepTitle(run, s) {
  if (s.kind === "wait" || s.kind === "parallel") return `${t("kind_" + s.kind)}: ${readable(s.id)}`;
  return fillText(txt(s.title), run);
}
const isRunOpen = (r) => !r.finished_at;
const stepOverdue = (s, now) => s.status === "active" && !!s.due_at && now >= s.due_at;
const stepBreached = (s, now) => !!s.breached_at || stepOverdue(s, now);

// ---- the live state: the runs channel ------------------------------------------------------
function loadRuns(list) {
  state.runs.clear();
  (list || []).forEach((r) => state.runs.set(r.id, r));
  refreshRuns();
}
function onRunDelta(run) {
  state.runs.set(run.id, run);
  if (sideShows(run)) { renderSide(); scheduleTimeline(run.id); }
  schedulePanel();
}
// After an action: the answer is the updated run.
function applyRunResult(run) { onRunDelta(run); }

function sideShows(run) {
  const side = runsUi.side;
  return !!side && ((side.alert && run.alert_id === side.alert) || side.run === run.id);
}

// ---- who may act on a step (the server decides; this only hides controls) -------------------
function mayActOnStep(run, s) {
  const me = state.me;
  if (!mayAct() || s.status !== "active" || !me) return false;
  const cityWide = me.scope && me.scope.level === "city";
  if (me.role === "admin" && cityWide) return true;
  if (s.assigned_to) return s.assigned_to === me.name;
  if (!s.assignee) return s.kind === "task" || s.kind === "decision" || s.kind === "approval";
  if (s.assignee.role === "admin" && me.role !== "admin") return false;
  if (cityWide) return true;
  if (s.assignee.scope === "city") return false;
  return [].concat(me.scope.id || []).includes(run.subject && run.subject.zone);
}
function assigneeText(s) {
  if (s.assigned_to) return `${t("assignedTo")} ${s.assigned_to}`;
  if (!s.assignee) return "";
  if (s.assignee.role === "admin") return t("forAdmins");
  return t(s.assignee.scope === "city" ? "forCityOperators" : "forOperators");
}

// ---- the side panel: one alert's runs, or one run ------------------------------------------
// Opened with the alert's detail (alerts.js showAlert); the runs it holds, then the API's.
async function showAlertRuns(alertId) {
  const side = { alert: alertId, loaded: false };
  runsUi.side = side;
  renderSide();
  try {
    const body = await api(`/api/runs?alert=${encodeURIComponent(alertId)}&state=all`);
    for (const r of body.runs || []) if (!state.runs.has(r.id)) state.runs.set(r.id, r);
  } catch (err) { /* a centre without playbooks: nothing to show */ }
  side.loaded = true;
  if (runsUi.side === side) renderSide();
}
// A run alone (a reported incident's, or from the panel).
async function showRun(id) {
  runsUi.side = { run: id };
  if (!state.runs.has(id)) {
    try { const r = await api(`/api/runs/${encodeURIComponent(id)}`); runsUi.timelines.set(id, r.timeline || []); delete r.timeline; state.runs.set(id, r); }
    catch (err) { runsUi.side = null; alert(`${t("actionFailed")}: ${err.message}`); return; }
  }
  renderSide();
}
// The alert's detail closed, or turned to a station: its runs go too; a run shown alone
// stays (moved to the right edge or beside the detail).
function alertDetailClosed() {
  if (runsUi.side && runsUi.side.alert) hideRuns();
  else if (runsUi.side) renderSide();
}
function hideRuns() {
  runsUi.side = null;
  const side = $("#runs-side");
  side.hidden = true; side.dataset.alert = ""; side.dataset.run = "";
  $("#runs-side-body").innerHTML = "";
}
$("#runs-side-close").addEventListener("click", () => hideRuns());
// A full-screen panel (history, data quality, playbooks) covers the map and the lists: the
// side panel steps out of its way until it closes, instead of hiding the panel's rows.
const fullPanels = ["#history", "#quality", "#runs"].map((sel) => $(sel));
const panelWatch = new MutationObserver(() => $("#runs-side").classList.toggle("covered", fullPanels.some((p) => !p.hidden)));
fullPanels.forEach((p) => panelWatch.observe(p, { attributes: true, attributeFilter: ["hidden"] }));

function sideRuns() {
  const side = runsUi.side;
  if (!side) return [];
  if (side.run) return state.runs.has(side.run) ? [state.runs.get(side.run)] : [];
  return [...state.runs.values()].filter((r) => r.alert_id === side.alert).sort((a, b) => (a.started_at || 0) - (b.started_at || 0));
}

function renderSide() {
  const el = $("#runs-side"), body = $("#runs-side-body");
  const side = runsUi.side;
  if (!side || state.wall) { if (!el.hidden) hideRuns(); return; }
  const runs = sideRuns();
  // Viewers see nothing beside an alert without runs; operators may start one on it.
  if (!runs.length && !(side.alert && side.loaded && mayAct())) { el.hidden = true; body.innerHTML = ""; return; }
  el.hidden = false;
  el.dataset.alert = side.alert || ""; el.dataset.run = side.run || "";
  el.classList.toggle("beside", !$("#detail").hidden);
  const existing = new Map([...body.querySelectorAll(":scope > .run")].map((s) => [s.dataset.run, s]));
  runs.forEach((run, i) => {
    let section = existing.get(run.id);
    if (!section) {
      section = document.createElement("section");
      section.className = "run"; section.dataset.run = run.id;
      section.innerHTML = `<div class="run-head"></div><ol class="run-steps"></ol>
        <h3 class="run-tl-title"></h3><table class="run-timeline"><tbody></tbody></table>`;
      scheduleTimeline(run.id, 0);
    }
    if (body.children[i] !== section) body.insertBefore(section, body.children[i] || null);
    existing.delete(run.id);
    renderRun(section, run);
  });
  existing.forEach((s) => s.remove());
  let empty = body.querySelector(":scope > .run-empty");
  if (!runs.length) {
    if (!empty) { empty = document.createElement("div"); empty.className = "run-empty"; body.appendChild(empty); }
    const html = `<p>${esc(t("noAlertRuns"))}</p><form class="run-start-alert"><select class="run-start-playbook" aria-label="${esc(t("choosePlaybook"))}">${playbookOptions(false)}</select>
      <button type="submit" class="run-start-button">${esc(t("startButton"))}</button><p class="run-error" role="alert"></p></form>`;
    if (empty.dataset.lang !== state.lang || !empty.innerHTML) { empty.innerHTML = html; empty.dataset.lang = state.lang; }
    ensurePlaybooks().then(() => {
      const select = empty.querySelector(".run-start-playbook");
      if (select && select.options.length <= 1) select.innerHTML = playbookOptions(false);
    });
  } else if (empty) empty.remove();
  tickRunDues();
}

// One run: its head, its steps (updated part by part, so a value being typed stays), its
// timeline.
function renderRun(section, run) {
  section.dataset.playbook = run.playbook;
  section.dataset.finished = String(!!run.finished_at);
  const subj = run.subject || {};
  const started = run.started_by ? tf("runStartedBy", { time: fmtClock(run.started_at), by: run.started_by }) : tf("runStartedAuto", { time: fmtClock(run.started_at) });
  const head = `<h2 class="run-name">${subj.exercise ? `<span class="run-exercise">${esc(t("exercise"))}</span> ` : ""}${esc(txt(run.name))}</h2>
    <p class="run-facts">${run.alert_id ? "" : `${esc(t("subjectWord"))}: <b>${esc(subj.message || subj.key || "")}</b> · `}${subj.zone ? `${esc(zoneName(subj.zone))} · ` : ""}${esc(started)}
    ${run.finished_at ? ` · <b>${esc(tf("runFinished", { time: fmtClock(run.finished_at) }))}</b>` : ""}${run.awaiting_all_clear && !run.finished_at ? ` · ${esc(t("runAwaitAllClear"))}` : ""}
    <small>${esc(run.playbook)} v${esc(run.version)}</small></p>`;
  const headEl = section.querySelector(".run-head");
  if (headEl.dataset.html !== head) { headEl.innerHTML = head; headEl.dataset.html = head; }
  const list = section.querySelector(".run-steps");
  const existing = new Map([...list.children].map((li) => [li.dataset.step, li]));
  orderedSteps(run).forEach((s, i) => {
    let li = existing.get(s.id);
    if (!li) {
      li = document.createElement("li");
      li.className = "run-step"; li.dataset.step = s.id;
      li.innerHTML = `<div class="run-step-head"></div><div class="run-step-done"></div><div class="run-actions"></div><p class="run-error" role="alert"></p>`;
    }
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
    existing.delete(s.id);
    renderStep(li, run, s);
  });
  existing.forEach((li) => li.remove());
  setText(section.querySelector(".run-tl-title"), t("runTimeline"));
  renderTimeline(section, run);
}

// The playbook's order, each parallel group's members right after it.
function orderedSteps(run) {
  const steps = run.steps || [];
  const ids = new Set(steps.map((s) => s.id));
  const out = [];
  for (const s of steps) {
    if (s.group && ids.has(s.group)) continue;
    out.push(s);
    if (s.kind === "parallel") out.push(...steps.filter((m) => m.group === s.id));
  }
  return out;
}

const STEP_MARKS = { pending: "○", active: "●", done: "✓", skipped: "–" };
function renderStep(li, run, s) {
  const status = s.status || "pending";
  const now = Date.now();
  li.dataset.status = status; li.dataset.kind = s.kind;
  li.classList.toggle("member", !!s.group);
  li.classList.toggle("breached", stepBreached(s, now));
  const who = status === "active" ? assigneeText(s) : "";
  const head = `<span class="run-mark">${STEP_MARKS[status] || "○"}</span><span class="run-title">${esc(stepTitle(run, s))}</span>
    <span class="run-kind">${esc(t("kind_" + s.kind))}</span><span class="run-status">${esc(t("st_" + status))}</span>
    ${s.breached_at && status !== "active" ? `<span class="run-late">${esc(t("overdueWord"))}</span>` : ""}
    ${status === "active" && s.due_at ? `<span class="run-due" data-due-at="${s.due_at}"></span>` : ""}
    ${who ? `<span class="run-who">${esc(who)}</span>` : ""}`;
  const headEl = li.querySelector(".run-step-head");
  if (headEl.dataset.html !== head) { headEl.innerHTML = head; headEl.dataset.html = head; tickRunDues(headEl); }
  const doneEl = li.querySelector(".run-step-done");
  const done = doneHtml(s);
  if (doneEl.dataset.html !== done) { doneEl.innerHTML = done; doneEl.dataset.html = done; }
  const actionsEl = li.querySelector(".run-actions");
  const actions = mayActOnStep(run, s) ? actionsHtml(run, s) : "";
  if (actionsEl.dataset.html !== actions) {
    actionsEl.innerHTML = actions; actionsEl.dataset.html = actions;
    li.querySelector(".run-error").textContent = "";
    const select = actionsEl.querySelector(".run-reassign-select");
    if (select) fillReassign(run, s, select);
  }
}

// Who did it, when, with what (a branch's title for a decision).
function doneHtml(s) {
  if (s.status === "skipped") return s.finished_at ? `<span class="run-when">${esc(tf("skippedAt", { time: fmtClock(s.finished_at) }))}</span>` : "";
  if (s.status !== "done") return "";
  let value = s.value;
  if (s.kind === "decision") { const b = (s.branches || []).find((x) => x.id === value); if (b) value = txt(b.title) || readable(b.id); }
  else if (s.kind === "approval") value = value === "approved" ? t("valueApproved") : value === "rejected" ? t("valueRejected") : value;
  const shown = value === null || value === undefined ? "" : typeof value === "object" ? JSON.stringify(value) : String(value);
  const when = s.finished_at ? fmtClock(s.finished_at) : "";
  return `✓ <span class="run-by">${esc(s.by ? tf("doneBy", { by: s.by, time: when }) : when)}</span>`
    + (shown ? ` · <b class="run-result">${esc(shown)}</b>` : "") + (s.note ? ` · <span class="run-note-shown">“${esc(s.note)}”</span>` : "");
}

// The controls of an active step the operator may act on: the evidence the task asks for,
// a decision's branches, an approval's answer; reassign and comment folded below.
function actionsHtml(run, s) {
  const ev = (s.evidence && s.evidence.kind) || "none";
  const noteRequired = s.kind === "task" && ev === "note";
  const note = `<textarea class="run-note" rows="2" maxlength="2000" placeholder="${esc(t(noteRequired ? "evNoteRequired" : "evNoteOptional"))}" aria-label="${esc(t(noteRequired ? "evNoteRequired" : "evNoteOptional"))}"${noteRequired ? ' aria-required="true"' : ""}></textarea>`;
  let main = "";
  if (s.kind === "task") {
    let input = "";
    if (ev === "number") input = `<input class="run-value" type="number" step="any" inputmode="decimal" placeholder="${esc(t("evNumber"))}" aria-label="${esc(t("evNumber"))}">`;
    else if (ev === "attachment") input = `<input class="run-value" type="text" maxlength="500" placeholder="${esc(t("evAttachment"))}" aria-label="${esc(t("evAttachment"))}">`;
    else if (ev === "choice") input = `<select class="run-value" aria-label="${esc(t("evChoice"))}"><option value="">${esc(t("evChoice"))}</option>${(s.evidence.choices || []).map((c) => `<option value="${esc(c)}">${esc(readable(c))}</option>`).join("")}</select>`;
    main = `${input}${note}<div class="run-buttons"><button type="button" class="run-complete">${esc(t("runComplete"))}</button></div>`;
  } else if (s.kind === "decision") {
    main = `${note}<div class="run-buttons">${(s.branches || []).map((b) => `<button type="button" class="run-choose" data-branch="${esc(b.id)}">${esc(txt(b.title) || readable(b.id))}</button>`).join("")}</div>`;
  } else if (s.kind === "approval") {
    main = `${note}<div class="run-buttons"><button type="button" class="run-approve">${esc(t("runApprove"))}</button><button type="button" class="run-reject">${esc(t("runReject"))}</button></div>`;
  }
  const reassign = run.alert_id && (s.kind === "task" || s.kind === "decision" || s.kind === "approval")
    ? `<div class="run-line"><select class="run-reassign-select" aria-label="${esc(t("chooseAssignee"))}"><option value="">${esc(t("loading"))}</option></select><button type="button" class="run-reassign">${esc(t("runReassign"))}</button></div>` : "";
  return `<div class="run-main">${main}</div><details class="run-more"><summary>${esc(t(reassign ? "runMore" : "runComment"))}</summary>${reassign}
    <div class="run-line"><textarea class="run-comment-input" rows="1" maxlength="2000" placeholder="${esc(t("runCommentText"))}" aria-label="${esc(t("runCommentText"))}"></textarea><button type="button" class="run-comment">${esc(t("runComment"))}</button></div></details>`;
}

// The accounts that may take the alert (GET /api/alerts/{id}/assignees), once per alert.
async function fillReassign(run, s, select) {
  let people = runsUi.assignees.get(run.alert_id);
  try {
    if (!people) { people = (await api(`/api/alerts/${encodeURIComponent(run.alert_id)}/assignees`)).assignees || []; runsUi.assignees.set(run.alert_id, people); }
  } catch (err) {
    const e = select.closest(".run-step") && select.closest(".run-step").querySelector(".run-error");
    if (e) e.textContent = `${t("actionFailed")}: ${err.message}`;
    return;
  }
  if (!select.isConnected) return;
  const mine = state.me && state.me.name;
  const list = people.filter((p) => p.name !== mine && (p.role === "operator" || p.role === "admin"));
  select.innerHTML = `<option value="">${esc(t(list.length ? "chooseAssignee" : "noAssignees"))}</option>`
    + list.map((p) => `<option value="${esc(p.name)}"${p.name === s.assigned_to ? " selected" : ""}>${esc(p.name)} — ${esc(t("role_" + p.role))}</option>`).join("");
}

// Every second: the countdowns ("còn 4 phút" / "4 min left", then "quá hạn 1 phút") and the
// overdue marks, on what is shown.
function tickRunDues(root) {
  const now = Date.now();
  (root || document).querySelectorAll(".run-due[data-due-at]").forEach((el) => {
    const due = Number(el.dataset.dueAt);
    const over = now >= due;
    setText(el, over ? tf("dueOver", { over: fmtAge(now - due, true) }) : tf("dueLeft", { left: fmtAge(due - now, true) }));
    el.classList.toggle("over", over);
    const li = el.closest(".run-step");
    if (li && over && !li.classList.contains("breached")) li.classList.add("breached");
  });
}
setInterval(() => { if (!$("#runs-side").hidden || !$("#runs").hidden) tickRunDues(); }, 1000);

// ---- the timeline: GET /api/runs/{id}, again after each change ------------------------------
function scheduleTimeline(id, delay = 300) {
  clearTimeout(runsUi.timelineTimers.get(id));
  runsUi.timelineTimers.set(id, setTimeout(() => fetchTimeline(id), delay));
}
async function fetchTimeline(id) {
  runsUi.timelineTimers.delete(id);
  try {
    const r = await api(`/api/runs/${encodeURIComponent(id)}`);
    runsUi.timelines.set(id, r.timeline || []);
    delete r.timeline;
    if (!state.runs.has(id)) state.runs.set(id, r);
  } catch (err) { return; }
  const section = document.querySelector(`#runs-side .run[data-run="${CSS.escape(id)}"]`);
  if (section && state.runs.has(id)) renderTimeline(section, state.runs.get(id));
}
// An event's value: a severity in words, who was told, where a message went, else as sent.
function eventValue(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "string") return SEVERITY_RANK[v] ? t(v) : v;
  if (typeof v === "object" && !Array.isArray(v)) {
    if (v.people) return assigneeText({ assignee: v.people });
    const dest = ["mqtt", "kafka", "webhook"].find((k) => typeof v[k] === "string");
    if (dest) return `${dest}: ${v[dest]}`;
  }
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}
function renderTimeline(section, run) {
  const steps = new Map((run.steps || []).map((s) => [s.id, s]));
  const rows = (runsUi.timelines.get(run.id) || []).map((e) => {
    const s = e.step && steps.get(e.step);
    const detail = [eventValue(e.value), e.note ? `“${e.note}”` : ""].filter(Boolean).join(" · ");
    return `<tr class="run-event" data-event="${esc(e.event)}" data-step="${esc(e.step || "")}"><td class="tl-time">${esc(fmtClock(e.at))}</td>
      <td class="tl-step">${esc(s ? stepTitle(run, s) : e.step || t("runWhole"))}</td>
      <td class="tl-event">${esc(runEventName(e.event))} <small class="ev-code">${esc(e.event)}</small></td><td class="tl-by">${esc(e.by || "")}</td><td class="tl-detail">${esc(detail)}</td></tr>`;
  }).join("");
  const tbody = section.querySelector(".run-timeline tbody");
  if (tbody.dataset.html !== rows) { tbody.innerHTML = rows; tbody.dataset.html = rows; }
}

// ---- acting on a step: POST /api/runs/{id}/steps/{step} ------------------------------------
$("#runs-side-body").addEventListener("click", async (e) => {
  const b = e.target.closest("button");
  const li = b && b.closest(".run-step");
  if (!li || state.wall) return;
  const runId = li.closest(".run").dataset.run, step = li.dataset.step;
  const value = (sel) => { const el = li.querySelector(sel); return el ? el.value.trim() : ""; };
  const note = value(".run-note") || undefined;
  let body;
  if (b.classList.contains("run-complete")) {
    const input = li.querySelector(".run-value");
    const raw = input ? input.value.trim() : "";
    body = { action: "complete", note };
    if (input) body.value = raw === "" ? null : input.type === "number" ? Number(raw) : raw;
  } else if (b.classList.contains("run-choose")) body = { action: "choose", branch: b.dataset.branch, note };
  else if (b.classList.contains("run-approve")) body = { action: "approve", note };
  else if (b.classList.contains("run-reject")) body = { action: "reject", note };
  else if (b.classList.contains("run-reassign")) body = { action: "reassign", to: value(".run-reassign-select") };
  else if (b.classList.contains("run-comment")) body = { action: "comment", note: value(".run-comment-input") };
  else return;
  const error = li.querySelector(".run-error");
  error.textContent = "";
  b.disabled = true;
  try {
    const run = await api(`/api/runs/${encodeURIComponent(runId)}/steps/${encodeURIComponent(step)}`, { method: "POST", body: JSON.stringify(body) });
    if (body.action === "comment") { const c = li.querySelector(".run-comment-input"); if (c) c.value = ""; }
    applyRunResult(run);
    scheduleTimeline(runId, 0);
  } catch (err) {
    error.textContent = `${t("actionFailed")}: ${err.message}`;
  } finally { if (b.isConnected) b.disabled = false; }
});

// Starting a playbook on the alert shown (operators, when it has none yet).
$("#runs-side-body").addEventListener("submit", async (e) => {
  const form = e.target.closest(".run-start-alert");
  if (!form) return;
  e.preventDefault();
  await startRun({ playbook: form.querySelector(".run-start-playbook").value, alert_id: runsUi.side && runsUi.side.alert }, form.querySelector(".run-error"));
});

async function startRun(body, error) {
  error.textContent = "";
  if (!body.playbook) { error.textContent = t("choosePlaybook"); return null; }
  try {
    const run = await api("/api/runs", { method: "POST", body: JSON.stringify(body) });
    state.runs.set(run.id, run);
    scheduleTimeline(run.id, 0);
    if (runsUi.side && runsUi.side.alert && runsUi.side.alert === run.alert_id) renderSide();
    schedulePanel();
    return run;
  } catch (err) { error.textContent = `${t("actionFailed")}: ${err.message}`; return null; }
}

// ---- the playbooks panel: open runs, and starting one on a reported incident ----------------
async function ensurePlaybooks(force) {
  if (runsUi.playbooks && !force) return runsUi.playbooks;
  try { runsUi.playbooks = (await api("/api/playbooks")).playbooks || []; } catch (err) { runsUi.playbooks = runsUi.playbooks || []; }
  return runsUi.playbooks;
}
function playbookOptions(manualOnly) {
  const list = (runsUi.playbooks || []).filter((p) => !manualOnly || p.manual);
  return `<option value="">${esc(t("choosePlaybook"))}</option>` + list.map((p) => `<option value="${esc(p.id)}">${esc(txt(p.name) || p.id)}</option>`).join("");
}

function openRunsPanel() {
  const panel = $("#runs");
  panel.hidden = false;
  buildRunsPanel();
  ensurePlaybooks(true).then(() => buildRunsPanel(true));
}
// The panel's frame (in the page's language) and its start form; the list is renderRunsList.
function buildRunsPanel(refill) {
  const panel = $("#runs");
  if (panel.dataset.lang !== state.lang) {
    const zones = state.ownZones && state.ownZones.length ? state.ownZones : [...state.zones.keys()];
    panel.innerHTML = `<button id="r-close" title="${esc(t("close"))}">×</button><h2>${esc(t("runsTitle"))}</h2>
      <table id="r-list"><thead><tr><th>${esc(t("pbWord"))}</th><th>${esc(t("subjectWord"))}</th><th>${esc(t("startedWord"))}</th><th>${esc(t("activeSteps"))}</th><th>${esc(t("nextDueWord"))}</th></tr></thead><tbody></tbody></table>
      <p id="r-empty"></p>
      <form id="r-start-form"${mayAct() ? "" : " hidden"}><h3>${esc(t("startTitle"))}</h3>
        <label>${esc(t("pbWord"))} <select id="r-playbook">${playbookOptions(true)}</select></label>
        <label>${esc(t("incidentTitle"))} <input id="r-title" maxlength="200" size="40"></label>
        <label>${esc(t("communeWord"))} <select id="r-zone">${zones.map((z) => `<option value="${esc(z)}">${esc(zoneName(z))}</option>`).join("")}</select></label>
        <button type="submit" id="r-start">${esc(t("startButton"))}</button><p id="r-error" class="run-error" role="alert"></p></form>`;
    panel.dataset.lang = state.lang;
  } else if (refill) {
    const select = $("#r-playbook"), chosen = select.value;
    select.innerHTML = playbookOptions(true); select.value = chosen;
  }
  renderRunsList();
}

function renderRunsList() {
  const tbody = $("#r-list tbody");
  if (!tbody) return;
  const now = Date.now();
  const open = [...state.runs.values()].filter(isRunOpen);
  const breached = (r) => (r.steps || []).some((s) => stepOverdue(s, now) || (s.status === "active" && s.breached_at));
  open.sort((a, b) => breached(b) - breached(a) || (a.next_due || Infinity) - (b.next_due || Infinity) || (b.started_at || 0) - (a.started_at || 0));
  const html = open.map((r) => {
    const active = (r.steps || []).filter((s) => s.status === "active" && s.kind !== "parallel");
    const subj = r.subject || {};
    return `<tr class="runs-row${breached(r) ? " breached" : ""}" data-run="${esc(r.id)}" data-alert="${esc(r.alert_id || "")}">
      <td>${subj.exercise ? `<span class="run-exercise">${esc(t("exercise"))}</span> ` : ""}${esc(txt(r.name))}</td>
      <td>${subj.severity ? `<span class="sev-${esc(subj.severity)}">${esc(t(subj.severity))}</span> ` : ""}${esc(subj.message || subj.key || "")}${subj.zone ? ` <small>${esc(zoneName(subj.zone))}</small>` : ""}</td>
      <td>${esc(fmtClock(r.started_at))}</td><td>${active.map((s) => esc(stepTitle(r, s))).join("<br>")}</td>
      <td>${r.next_due ? `<span class="run-due" data-due-at="${r.next_due}"></span>` : ""}</td></tr>`;
  }).join("");
  if (tbody.dataset.html !== html) { tbody.innerHTML = html; tbody.dataset.html = html; tickRunDues(tbody); }
  setText($("#r-empty"), open.length ? "" : t("noRuns"));
}

function renderRunsButton() {
  const open = [...state.runs.values()].filter(isRunOpen);
  const now = Date.now();
  setText($("#runs-count"), open.length ? `(${open.length})` : "");
  $("#runs-open").classList.toggle("has-breach", open.some((r) => (r.steps || []).some((s) => s.status === "active" && stepBreached(s, now))));
}

// The list follows the deltas, at most every 250 ms.
function schedulePanel() {
  if (runsUi.panelPending) return;
  runsUi.panelPending = true;
  setTimeout(() => { runsUi.panelPending = false; renderRunsButton(); if (!$("#runs").hidden) renderRunsList(); }, 250);
}

$("#runs-open").addEventListener("click", openRunsPanel);
$("#runs").addEventListener("click", async (e) => {
  if (e.target.closest("#r-close")) { $("#runs").hidden = true; return; }
  const row = e.target.closest(".runs-row");
  if (!row) return;
  $("#runs").hidden = true;
  try {
    if (row.dataset.alert) await openAlert(row.dataset.alert);
    else { if (!$("#detail").hidden) closeDetail(); await showRun(row.dataset.run); }
  } catch (err) { alert(`${t("actionFailed")}: ${err.message}`); }
});
$("#runs").addEventListener("submit", async (e) => {
  if (e.target.id !== "r-start-form") return;
  e.preventDefault();
  const error = $("#r-error");
  const title = $("#r-title").value.trim();
  if (!title) { error.textContent = t("incidentTitle"); $("#r-title").focus(); return; }
  const run = await startRun({ playbook: $("#r-playbook").value, incident: { title, zone: $("#r-zone").value } }, error);
  if (!run) return;
  $("#r-title").value = "";
  $("#runs").hidden = true;
  if (!$("#detail").hidden) closeDetail();
  await showRun(run.id);
});

// Everything shown again (a snapshot, the language, a restart).
function refreshRuns() {
  $("#runs-side-close").title = t("closePanel");
  renderRunsButton();
  if (runsUi.side) renderSide();
  if (!$("#runs").hidden) buildRunsPanel();
}
