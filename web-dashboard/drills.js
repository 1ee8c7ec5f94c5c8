// Drills on the wall screen: the "Diễn tập" panel (#drills: the drills in progress and past,
// their clock and progress, the players' messages; for admins and drill leaders the scripts
// to start, with a speed, and pause, resume, end and abort), a header mark while a drill
// runs, and the after-action report (#drill-report: objectives and their ratings, every
// expected outcome with its observed time, what nobody expected, a timeline chart on the
// drill's clock) that prints cleanly (Print / PDF) and saves as one HTML file for the
// archive. Opened from the panel or by the address `/?report=<exercise id>`. Exercise
// alerts carry the EXERCISE / DIỄN TẬP mark in the alert list (alerts.js asks isExercise).
// The server decides who may start or steer; refusals are shown inline. Uses app.js's
// helpers (api, t, tf, esc, $, state) and runs.js's txt.
"use strict";

Object.assign(I18N.vi, {
  drills: "Diễn tập", drillsTitle: "Diễn tập", drillRunning: "ĐANG DIỄN TẬP", drillScripts: "Kịch bản diễn tập",
  drillStart: "Bắt đầu", drillSpeed: "Tốc độ", drillPause: "Tạm dừng", drillResume: "Tiếp tục", drillEnd: "Kết thúc",
  drillAbort: "Huỷ diễn tập", drillReport: "Báo cáo", drillNone: "Chưa có cuộc diễn tập nào", drillWord: "Diễn tập",
  drillStatus: "Trạng thái", drillStarted: "Bắt đầu", drillClock: "Thời gian diễn tập", drillProgress: "Tiến độ",
  ds_running: "đang diễn ra", ds_paused: "tạm dừng", ds_finished: "đã kết thúc", ds_aborted: "đã huỷ",
  drillMessages: "Thông điệp cho người tham gia", drillActions: "bước", drillAbortConfirm: "Huỷ cuộc diễn tập này? Cảnh báo và kịch bản của nó sẽ được đóng.",
  reportTitle: "Báo cáo sau diễn tập", reportObjectives: "Mục tiêu", reportOutcomes: "Kết quả mong đợi",
  reportExpected: "Mong đợi", reportObserved: "Thực tế", reportWithin: "trong vòng", reportVerdict: "Đánh giá",
  v_met: "đạt", v_late: "chậm", v_missed: "không đạt", reportUnexpected: "Ngoài dự kiến",
  reportUnexpectedAlerts: "Cảnh báo không nằm trong kịch bản", reportBreached: "Bước quá hạn", reportMissed: "Không đạt",
  reportNothing: "không có", reportTimeline: "Diễn biến", reportPrint: "In / PDF", reportSave: "Lưu HTML", reportLeader: "Người điều hành diễn tập",
  r_performed: "Đã thực hiện", r_some_challenges: "Thực hiện, còn một số hạn chế", r_major_challenges: "Thực hiện, còn nhiều hạn chế", r_not_performed: "Chưa thực hiện",
  lane_inject: "Tình huống", lane_message: "Thông điệp", lane_alert: "Cảnh báo", lane_ack: "Xác nhận", lane_step_started: "Bắt đầu bước",
  lane_step_done: "Hoàn thành bước", lane_step_breached: "Quá hạn", lane_expected: "Mong đợi",
  oc_alert: "cảnh báo", oc_ack: "xác nhận", oc_step: "bước kịch bản", reportSpeed: "tốc độ ×{n}", reportPauses: "{n} lần tạm dừng",
});
Object.assign(I18N.en, {
  drills: "Drills", drillsTitle: "Drills", drillRunning: "DRILL IN PROGRESS", drillScripts: "Drill scripts",
  drillStart: "Start", drillSpeed: "Speed", drillPause: "Pause", drillResume: "Resume", drillEnd: "End",
  drillAbort: "Abort", drillReport: "Report", drillNone: "No drills yet", drillWord: "Drill",
  drillStatus: "Status", drillStarted: "Started", drillClock: "Drill time", drillProgress: "Progress",
  ds_running: "running", ds_paused: "paused", ds_finished: "finished", ds_aborted: "aborted",
  drillMessages: "Messages to the players", drillActions: "actions", drillAbortConfirm: "Abort this drill? Its alerts and runs will be closed.",
  reportTitle: "After-action report", reportObjectives: "Objectives", reportOutcomes: "Expected outcomes",
  reportExpected: "Expected", reportObserved: "Observed", reportWithin: "within", reportVerdict: "Verdict",
  v_met: "met", v_late: "late", v_missed: "missed", reportUnexpected: "Not expected",
  reportUnexpectedAlerts: "Alerts no outcome expected", reportBreached: "Breached steps", reportMissed: "Missed",
  reportNothing: "none", reportTimeline: "Timeline", reportPrint: "Print / PDF", reportSave: "Save HTML", reportLeader: "Drill leader",
  r_performed: "Performed", r_some_challenges: "Performed with some challenges", r_major_challenges: "Performed with major challenges", r_not_performed: "Not performed",
  lane_inject: "Injects", lane_message: "Messages", lane_alert: "Alerts", lane_ack: "Acknowledged", lane_step_started: "Step started",
  lane_step_done: "Step done", lane_step_breached: "Breached", lane_expected: "Expected",
  oc_alert: "alert", oc_ack: "acknowledgement", oc_step: "playbook step", reportSpeed: "speed ×{n}", reportPauses: "{n} pauses",
});

const drillsUi = { drills: [], scripts: [], timer: null, report: null };
const mayLeadDrills = () => !!(state.me && state.me.may_lead_drills && !state.wall);

// Is this alert a drill's? (the list and the detail mark it)
const isExercise = (a) => !!(a && a.labels && a.labels.exercise);
const exerciseMark = () => `<span class="exercise-mark">DIỄN TẬP · EXERCISE</span>`;

// Drill time as m:ss (h:mm:ss past an hour).
function fmtDrill(ms) {
  if (ms === null || ms === undefined) return "—";
  const s = Math.round(ms / 1000), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return h ? `${h}:${String(m).padStart(2, "0")}:${String(sec).padStart(2, "0")}` : `${m}:${String(sec).padStart(2, "0")}`;
}

async function loadDrills() {
  try { drillsUi.drills = (await api("/api/drills")).drills || []; } catch (err) { drillsUi.drills = []; }
  renderDrillsButton();
  if (!$("#drills").hidden) renderDrillsPanel();
}

function renderDrillsButton() {
  const live = drillsUi.drills.filter((d) => d.status === "running" || d.status === "paused");
  const button = $("#drills-open");
  button.classList.toggle("drill-live", live.length > 0);
  setText($("#drills-count"), live.length ? `(${live.length})` : "");
  const mark = $("#drill-mark");
  mark.hidden = live.length === 0;
  setText(mark, live.length ? `${t("drillRunning")} · ${live.map((d) => txt(d.name) || d.drill).join(", ")}` : "");
}

async function openDrillsPanel() {
  $("#drills").hidden = false;
  if (mayLeadDrills()) {
    try { drillsUi.scripts = (await api("/api/drills/scripts")).scripts || []; } catch (err) { drillsUi.scripts = []; }
  }
  await loadDrills();
  renderDrillsPanel();
}

function drillRowHtml(d) {
  const lead = mayLeadDrills();
  const live = d.status === "running" || d.status === "paused";
  const controls = !lead || !live ? "" :
    (d.status === "running" ? `<button class="d-act" data-act="pause">${esc(t("drillPause"))}</button>` : `<button class="d-act" data-act="resume">${esc(t("drillResume"))}</button>`)
    + `<button class="d-act" data-act="end">${esc(t("drillEnd"))}</button><button class="d-act danger" data-act="abort">${esc(t("drillAbort"))}</button>`;
  const progress = d.actions !== undefined ? `${d.actions_taken}/${d.actions} ${esc(t("drillActions"))}` : "";
  const messages = (d.messages || []).map((m) => `<li>${esc(fmtDrill(m.at_ms))} — ${esc(txt(m.text))}</li>`).join("");
  return `<tr class="drill-row" data-id="${esc(d.id)}"><td>${esc(txt(d.name) || d.drill)}<br><small>${esc(d.id)}</small></td>
    <td class="drill-status" data-status="${esc(d.status)}">${esc(t("ds_" + d.status))}</td>
    <td>${esc(fmtClock(d.started_at))}<br><small>${esc(d.started_by || "")}</small></td>
    <td>${d.drill_time_ms !== undefined ? esc(fmtDrill(d.drill_time_ms)) : ""}${d.speed && d.speed !== 1 ? ` <small>×${esc(d.speed)}</small>` : ""}</td>
    <td>${progress}${messages ? `<ul class="drill-messages" title="${esc(t("drillMessages"))}">${messages}</ul>` : ""}</td>
    <td>${controls}<button class="d-report">${esc(t("drillReport"))}</button><p class="d-error run-error" role="alert"></p></td></tr>`;
}

function renderDrillsPanel() {
  const panel = $("#drills");
  const scripts = mayLeadDrills() && drillsUi.scripts.length ? `<h3>${esc(t("drillScripts"))}</h3><table id="d-scripts"><tbody>${drillsUi.scripts.map((s) =>
    `<tr data-drill="${esc(s.id)}"><td>${esc(txt(s.name))}<br><small>${esc(s.file)}</small></td><td>${esc(s.actions)} ${esc(t("drillActions"))} · ${esc(fmtDrill(s.duration_ms))}</td>
     <td><label>${esc(t("drillSpeed"))} <input class="d-speed" type="number" min="0.1" max="100" step="0.1" value="1" size="4"></label>
     <button class="d-start">${esc(t("drillStart"))}</button><p class="d-error run-error" role="alert"></p></td></tr>`).join("")}</tbody></table>` : "";
  const rows = drillsUi.drills.map(drillRowHtml).join("");
  const html = `<button id="d-close" title="${esc(t("closePanel"))}">×</button><h2>${esc(t("drillsTitle"))}</h2>${scripts}
    <table id="d-list"><thead><tr><th>${esc(t("drillWord"))}</th><th>${esc(t("drillStatus"))}</th><th>${esc(t("drillStarted"))}</th><th>${esc(t("drillClock"))}</th><th>${esc(t("drillProgress"))}</th><th></th></tr></thead>
    <tbody>${rows}</tbody></table>${rows ? "" : `<p>${esc(t("drillNone"))}</p>`}`;
  if (panel.dataset.html !== html) { panel.innerHTML = html; panel.dataset.html = html; }
}

$("#drills-open").addEventListener("click", openDrillsPanel);
$("#drills").addEventListener("click", async (e) => {
  if (e.target.closest("#d-close")) { $("#drills").hidden = true; return; }
  const row = e.target.closest("tr");
  if (!row) return;
  const error = row.querySelector(".d-error");
  try {
    if (e.target.closest(".d-start")) {
      const speed = Number(row.querySelector(".d-speed").value) || 1;
      await api("/api/drills", { method: "POST", body: JSON.stringify({ drill: row.dataset.drill, speed }) });
    } else if (e.target.closest(".d-act")) {
      const act = e.target.closest(".d-act").dataset.act;
      if (act === "abort" && !window.confirm(t("drillAbortConfirm"))) return;
      await api(`/api/drills/${encodeURIComponent(row.dataset.id)}/${act}`, { method: "POST", body: "{}" });
    } else if (e.target.closest(".d-report")) {
      await openReport(row.dataset.id);
      return;
    } else return;
    await loadDrills();
  } catch (err) { if (error) error.textContent = err.message; }
});

// ---- the after-action report ----------------------------------------------------------------
async function openReport(id) {
  const report = await api(`/api/drills/${encodeURIComponent(id)}/report`);
  drillsUi.report = report;
  $("#drills").hidden = true;
  const box = $("#drill-report");
  box.hidden = false;
  box.innerHTML = `<div class="report-bar no-print"><button id="rep-print">${esc(t("reportPrint"))}</button><button id="rep-save">${esc(t("reportSave"))}</button><button id="rep-close" title="${esc(t("closePanel"))}">×</button></div>${reportHtml(report)}`;
  window.history.replaceState(null, "", `/?report=${encodeURIComponent(id)}`);
}

const verdictClass = (v) => `verdict verdict-${esc(v)}`;
function outcomeText(o, expected) {
  const e = expected || {};
  if (o.kind === "alert") return `${t("oc_alert")} ${e.rule || ""} · ${e.key || ""}`;
  if (o.kind === "ack") return `${t("oc_ack")} (${e.of || ""})`;
  return `${t("oc_step")} ${e.playbook || ""}/${e.step || ""}`;
}

function reportHtml(r) {
  const f = r.findings || {};
  const expected = new Map((r.expected || []).map((x) => [x.id, x]));
  const objectives = (r.objectives || []).map((o) => {
    const got = (f.objectives || []).find((x) => x.id === o.id) || {};
    return `<tr><td>${esc(txt(o.title))}</td><td class="rating rating-${esc(got.rating)}">${esc(t("r_" + got.rating))}</td><td>${esc(Math.round((got.score || 0) * 100))} %</td></tr>`;
  }).join("");
  const outcomes = (f.outcomes || []).map((o) => `<tr class="outcome" data-id="${esc(o.id)}" data-verdict="${esc(o.verdict)}"><td>${esc(o.id)}</td><td>${esc(outcomeText(o, (expected.get(o.id) || {}).expect || expected.get(o.id)))}</td>
      <td>${esc(t("reportWithin"))} ${esc(fmtDrill(o.within_ms))}</td><td>${o.took_ms !== null && o.took_ms !== undefined ? esc(fmtDrill(o.took_ms)) + ` <small>(${esc(fmtDrill(o.from))} → ${esc(fmtDrill(o.at))})</small>` : "—"}</td>
      <td><span class="${verdictClass(o.verdict)}">${esc(t("v_" + o.verdict))}</span></td></tr>`).join("");
  const list = (items, render) => items && items.length ? `<ul>${items.map(render).join("")}</ul>` : `<p>${esc(t("reportNothing"))}</p>`;
  const pauses = (r.pauses || []).length;
  return `<article class="report" data-exercise="${esc(r.exercise)}">
    <header><p class="exercise-mark">DIỄN TẬP · EXERCISE</p><h1>${esc(t("reportTitle"))}: ${esc(txt(r.name))}</h1>
    <p>${esc(r.exercise)} · ${esc(t("ds_" + r.status))} · ${esc(fmtClock(r.started_at))} → ${esc(r.ended_at ? fmtClock(r.ended_at) : "…")} · ${esc(t("drillClock"))} ${esc(fmtDrill(r.drill_time_ms))}
    ${r.speed !== 1 ? ` · ${esc(tf("reportSpeed", { n: r.speed }))}` : ""}${pauses ? ` · ${esc(tf("reportPauses", { n: pauses }))}` : ""} · ${esc(t("reportLeader"))}: ${esc(r.started_by)}</p></header>
    <h2>${esc(t("reportObjectives"))}</h2><table class="rep-objectives"><tbody>${objectives}</tbody></table>
    <h2>${esc(t("reportOutcomes"))}</h2><table class="rep-outcomes"><thead><tr><th></th><th>${esc(t("reportExpected"))}</th><th></th><th>${esc(t("reportObserved"))}</th><th>${esc(t("reportVerdict"))}</th></tr></thead><tbody>${outcomes}</tbody></table>
    <h2>${esc(t("reportTimeline"))}</h2>${timelineSvg(r)}
    <h2>${esc(t("reportUnexpected"))}</h2>
    <h3>${esc(t("reportMissed"))}</h3>${list(f.missed, (m) => `<li>${esc(m)}</li>`)}
    <h3>${esc(t("reportUnexpectedAlerts"))}</h3>${list(f.unexpected_alerts, (a) => `<li>${esc(fmtDrill(a.fired_at))} ${esc(a.rule)} · ${esc(a.key)}</li>`)}
    <h3>${esc(t("reportBreached"))}</h3>${list(f.breached_steps, (s) => `<li>${esc(s.playbook)}/${esc(s.step)} ${esc(fmtDrill(s.breached_at))}</li>`)}
    <ol class="rep-timeline">${(r.timeline || []).map((e) => `<li><b>${esc(fmtDrill(e.at_ms))}</b> ${esc(t("lane_" + e.kind))}: ${esc(typeof e.what === "object" ? txt(e.what) : e.what)}${e.by ? ` — ${esc(e.by)}` : ""}</li>`).join("")}</ol>
  </article>`;
}

// The chart: one lane per kind of event, the expected windows as bars (coloured by verdict)
// with the observed moment; drill time across. Plain SVG: prints as it shows.
function timelineSvg(r) {
  const lanes = ["inject", "message", "alert", "ack", "step_started", "step_done", "step_breached", "expected"];
  const outcomes = (r.findings || {}).outcomes || [];
  const end = Math.max(1000, r.drill_time_ms || 0, ...outcomes.filter((o) => o.from !== null && o.from !== undefined).map((o) => o.from + o.within_ms), ...(r.timeline || []).map((e) => e.at_ms));
  const width = 1100, left = 150, laneH = 26, top = 10;
  const expectedRows = outcomes.length;
  const height = top + (lanes.length - 1) * laneH + expectedRows * 14 + 40;
  const x = (ms) => left + ((width - left - 20) * Math.max(0, ms)) / end;
  let svg = `<svg class="rep-chart" viewBox="0 0 ${width} ${height}" width="100%" role="img" aria-label="${esc(t("reportTimeline"))}">`;
  lanes.slice(0, -1).forEach((lane, i) => {
    const y = top + i * laneH + laneH / 2;
    svg += `<text x="4" y="${y + 4}" class="lane">${esc(t("lane_" + lane))}</text><line x1="${left}" x2="${width - 20}" y1="${y}" y2="${y}" class="lane-line"/>`;
    (r.timeline || []).filter((e) => e.kind === lane).forEach((e) => {
      svg += `<circle cx="${x(e.at_ms)}" cy="${y}" r="5" class="ev ev-${lane}"><title>${esc(fmtDrill(e.at_ms))} ${esc(typeof e.what === "object" ? txt(e.what) : e.what)}</title></circle>`;
    });
  });
  const base = top + (lanes.length - 1) * laneH + 6;
  svg += `<text x="4" y="${base + 10}" class="lane">${esc(t("lane_expected"))}</text>`;
  outcomes.forEach((o, i) => {
    const y = base + i * 14;
    if (o.from === null || o.from === undefined) { svg += `<text x="${left}" y="${y + 10}" class="missing">${esc(o.id)}: ${esc(t("v_missed"))}</text>`; return; }
    svg += `<rect x="${x(o.from)}" y="${y + 2}" width="${Math.max(2, x(o.from + o.within_ms) - x(o.from))}" height="9" class="bar bar-${esc(o.verdict)}"><title>${esc(o.id)}</title></rect>`;
    if (o.at !== null && o.at !== undefined) svg += `<line x1="${x(o.at)}" x2="${x(o.at)}" y1="${y}" y2="${y + 13}" class="at at-${esc(o.verdict)}"/>`;
    svg += `<text x="${Math.min(width - 120, x(o.from + o.within_ms) + 4)}" y="${y + 10}" class="bar-label">${esc(o.id)}</text>`;
  });
  const axisY = height - 14;
  for (let k = 0; k <= 5; k++) {
    const ms = (end * k) / 5;
    svg += `<text x="${x(ms)}" y="${axisY + 10}" class="tick">${esc(fmtDrill(ms))}</text>`;
  }
  return svg + `</svg>`;
}

// One self-contained HTML file for the archive: the report and the page's styles.
function saveReportHtml() {
  const r = drillsUi.report;
  const styles = [...document.styleSheets].map((s) => { try { return [...s.cssRules].map((c) => c.cssText).join("\n"); } catch (e) { return ""; } }).join("\n");
  const doc = `<!doctype html><html lang="${esc(state.lang)}"><head><meta charset="utf-8"><title>${esc(t("reportTitle"))} ${esc(r.exercise)}</title><style>${styles}</style></head><body class="report-page">${$("#drill-report .report").outerHTML}</body></html>`;
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([doc], { type: "text/html" }));
  a.download = `${r.exercise}.html`;
  document.body.appendChild(a); a.click(); a.remove();
}

$("#drill-report").addEventListener("click", (e) => {
  if (e.target.closest("#rep-close")) { $("#drill-report").hidden = true; window.history.replaceState(null, "", "/"); }
  else if (e.target.closest("#rep-print")) window.print();
  else if (e.target.closest("#rep-save")) saveReportHtml();
});

// After login: the header mark and button (not for integrators), a report asked for by the
// address, and a look at the drills every 5 s.
function startDrills() {
  const button = $("#drills-open");
  button.hidden = !state.me || state.me.role === "integrator";
  if (button.hidden) return;
  loadDrills();
  clearInterval(drillsUi.timer);
  drillsUi.timer = setInterval(loadDrills, 5000);
  const wanted = new URLSearchParams(location.search).get("report");
  if (wanted) openReport(wanted).catch(() => {});
}
