// The station drill-down (a marker's click, a quality row, an alert's station): the current
// values with their units and limits, the status (00 measuring / 01 calibrating / 02
// instrument error), the last message's time and age, a chart of the recent readings (one
// metric at a time) with its limits drawn as lines (Cmax, the pH range, the flood alarm
// levels I/II/III) on a time axis fitted to the data (±30 minutes around a single reading,
// drawn as a dot; 1 h / 1 day / 1 week buttons clipped to the readings there are), and a
// camera's last detections, newest first. Updated live from the `stations` channel.
"use strict";

Object.assign(I18N.vi, {
  st_00: "đo bình thường", st_01: "hiệu chuẩn", st_02: "lỗi thiết bị", statusWord: "Trạng thái", lastMessage: "Bản tin cuối",
  noMessage: "chưa có bản tin", late: "trễ", limitsWord: "Giới hạn", alarmLevel: "BĐ {n}", limitMax: "Cmax", limitMin: "Cmin",
  range_all: "Tất cả", range_1h: "1 giờ", range_1d: "1 ngày", range_1w: "1 tuần", metricWord: "Chỉ tiêu", valueWord: "Giá trị",
  detections: "Phát hiện gần đây", noDetections: "Chưa có phát hiện", confidence: "độ tin cậy", noReadings: "Chưa có số liệu",
  chartOf: "Diễn biến {metric}", cadence: "chu kỳ {s} giây", freeFlow: "tốc độ tự do {v} km/h",
  kind_discharge: "Quan trắc nước thải", kind_air: "Không khí", kind_water_level: "Mực nước", kind_water_quality: "Chất lượng nước",
  kind_rainfall: "Lượng mưa", kind_traffic: "Giao thông", kind_weather: "Thời tiết", kind_emission: "Khí thải",
  kind_camera: "Camera", kind_indicator: "Chỉ số",
  sector_environment: "Môi trường", sector_transport: "Giao thông", sector_water_disaster: "Nước và phòng chống thiên tai",
  sector_health: "Y tế", sector_public_safety: "An ninh trật tự và PCCC",
});
Object.assign(I18N.en, {
  st_00: "measuring", st_01: "calibrating", st_02: "instrument error", statusWord: "Status", lastMessage: "Last message",
  noMessage: "no message yet", late: "late", limitsWord: "Limits", alarmLevel: "Alarm {n}", limitMax: "Cmax", limitMin: "Cmin",
  range_all: "All", range_1h: "1 h", range_1d: "1 day", range_1w: "1 week", metricWord: "Parameter", valueWord: "Value",
  detections: "Recent detections", noDetections: "No detections yet", confidence: "confidence", noReadings: "No readings yet",
  chartOf: "{metric} over time", cadence: "every {s} s", freeFlow: "free flow {v} km/h",
  kind_discharge: "Wastewater discharge", kind_air: "Air", kind_water_level: "Water level", kind_water_quality: "Water quality",
  kind_rainfall: "Rainfall", kind_traffic: "Traffic", kind_weather: "Weather", kind_emission: "Stack emission",
  kind_camera: "Camera", kind_indicator: "Indicator",
  sector_environment: "Environment", sector_transport: "Transport", sector_water_disaster: "Water and disaster",
  sector_health: "Health", sector_public_safety: "Public safety",
});

// Metric and detection names (the server's ids; an unknown one is shown as it is).
const METRIC_NAMES = {
  vi: { cod: "COD", bod5: "BOD5", tss: "TSS", nh4: "Amoni (NH4+)", no3: "Nitrat", po4: "Phosphat", do: "Oxy hoà tan (DO)", tn: "Tổng N", tp: "Tổng P",
    pm25: "PM2.5", pm10: "PM10", no2: "NO2", so2: "SO2", co: "CO", o3: "O3", temperature: "Nhiệt độ", temp: "Nhiệt độ", flow: "Lưu lượng",
    water_level: "Mực nước", speed: "Tốc độ", volume: "Số xe", ph: "pH", occupancy: "Độ chiếm dụng", humidity: "Độ ẩm", rainfall: "Lượng mưa",
    confidence: "Độ tin cậy", vn_aqi: "VN_AQI" },
  en: { cod: "COD", bod5: "BOD5", tss: "TSS", nh4: "Ammonium (NH4+)", no3: "Nitrate", po4: "Phosphate", do: "Dissolved oxygen", tn: "Total N", tp: "Total P",
    pm25: "PM2.5", pm10: "PM10", no2: "NO2", so2: "SO2", co: "CO", o3: "O3", temperature: "Temperature", temp: "Temperature", flow: "Flow",
    water_level: "Water level", speed: "Speed", volume: "Vehicles", ph: "pH", occupancy: "Occupancy", humidity: "Humidity", rainfall: "Rainfall",
    confidence: "Confidence", vn_aqi: "VN_AQI" },
};
const DETECTION_NAMES = {
  vi: { fire_smoke: "Cháy, khói", red_light: "Vượt đèn đỏ", crowd: "Tụ tập đông người", congestion: "Ùn tắc", road_flooding: "Ngập đường", wrong_way: "Đi ngược chiều",
    plate: "biển số", face: "khuôn mặt", lane: "làn", direction: "hướng" },
  en: { fire_smoke: "Fire or smoke", red_light: "Red-light running", crowd: "Crowd", congestion: "Congestion", road_flooding: "Road flooding", wrong_way: "Wrong way",
    plate: "plate", face: "face", lane: "lane", direction: "direction" },
};
const metricName = (m) => METRIC_NAMES[state.lang][m] || m;
const detectionName = (e) => DETECTION_NAMES[state.lang][e] || e;
const UNITS_FALLBACK = { volume: "xe", occupancy: "%", speed: "km/h", water_level: "m" };
// The metric a kind's chart opens on.
const PREFERRED_METRIC = { water_level: "water_level", air: "pm25", traffic: "speed", discharge: "cod", rainfall: "rainfall", water_quality: "do", emission: "so2" };
const RANGES = { "1h": 3600, "1d": 86400, "1w": 7 * 86400 };
const HALF_HOUR = 1800;

// Up to two decimals, trailing zeros dropped; "—" for no value.
const fmtReading = (v) => (v === null || v === undefined || Number.isNaN(Number(v))) ? "—" : String(Number(Number(v).toFixed(2)));

async function openStation(id, keepBody) {
  state.stationRequest = id;
  const s = await api(`/api/stations/${encodeURIComponent(id)}`);
  // A later click (another station, a closed panel, another alert) wins.
  if (state.stationRequest !== id || (keepBody && (!state.detailAlert || $("#detail").hidden))) return;
  $("#detail").hidden = false;
  if (!keepBody) {
    state.detailAlert = null; state.detailRecord = null;
    $("#detail").dataset.view = "station";
    $("#detail-body").innerHTML = "";
    alertDetailClosed(); // the alert's playbook runs (runs.js) go with it
  }
  let section = $("#detail-station");
  if (!section) { section = document.createElement("section"); section.id = "detail-station"; $("#detail-body").appendChild(section); }
  const metrics = new Set();
  for (const r of s.recent || []) Object.keys(r.values || {}).forEach((m) => metrics.add(m));
  for (const m of Object.keys((s.latest && s.latest.values) || {})) metrics.add(m);
  metrics.delete("confidence");
  const st = { info: s, keepBody: !!keepBody, metrics: [...metrics], ts: [], values: new Map(), range: "all", metric: null };
  st.metrics.forEach((m) => st.values.set(m, []));
  st.info.detections = (s.detections || []).slice();
  state.station = st;
  state.detailStation = id;
  state.detailSeries = st;
  (s.recent || []).forEach((r) => pushReading(r.ts, r.values));
  st.metric = defaultMetric(st);
  renderStationDetail();
  subscribeStation(id);
}

function defaultMetric(st) {
  const preferred = PREFERRED_METRIC[st.info.kind];
  if (preferred && st.metrics.includes(preferred)) return preferred;
  const limited = st.metrics.find((m) => st.info.limits && st.info.limits[m]);
  return limited || st.metrics[0] || null;
}

function subscribeStation(id) {
  if (state.ws && state.ws.readyState === 1) state.ws.send(JSON.stringify({ op: "subscribe", channel: "stations", filter: { station: id } }));
}

function pushReading(ts, values) {
  const st = state.station;
  if (!st || (st.ts.length && ts <= st.ts[st.ts.length - 1] * 1000)) return false;
  for (const m of Object.keys(values || {})) {
    if (m === "confidence" || st.values.has(m)) continue;
    st.metrics.push(m); st.values.set(m, st.ts.map(() => null));
    if (!st.metric) st.metric = m;
  }
  st.ts.push(ts / 1000);
  st.values.forEach((arr, m) => arr.push(values[m] ?? null));
  if (st.ts.length > 240) { st.ts.shift(); st.values.forEach((arr) => arr.shift()); }
  return true;
}

function onReading(r) {
  const s = state.stations.get(r.station);
  if (s && !s.seen) { s.seen = true; refreshMarker(r.station); }
  const st = state.station;
  if (!st || r.station !== state.detailStation) return;
  const latest = st.info.latest;
  if (!latest || r.ts >= latest.ts) {
    st.info.latest = { ts: r.ts, values: { ...((latest && latest.values) || {}), ...(r.values || {}) }, status: r.status, event: r.event, attrs: r.attrs || {} };
  }
  const added = pushReading(r.ts, r.values || {});
  if (r.event && added) {
    st.info.detections.push({ ts: r.ts, event: r.event, confidence: (r.values || {}).confidence ?? null, attrs: r.attrs || {} });
    if (st.info.detections.length > 50) st.info.detections.shift();
  }
  renderStationLive();
  if (added) updateChart();
}

// ---- rendering ---------------------------------------------------------------------------------
function unitOf(m) {
  const u = (state.station.info.units || {})[m] || UNITS_FALLBACK[m] || "";
  return term(u);
}

// The lines a metric's chart draws: its limits, and a gauge's alarm levels I/II/III.
function limitLines(st, m) {
  const lines = [];
  const lim = st.info.limits && st.info.limits[m];
  if (lim && lim.max !== null && lim.max !== undefined) lines.push({ value: lim.max, label: t("limitMax"), colour: "#ff4d4f" });
  if (lim && lim.min !== null && lim.min !== undefined) lines.push({ value: lim.min, label: t("limitMin"), colour: "#ff9f1a" });
  if (m === "water_level" && Array.isArray(st.info.alarm_levels)) {
    const colours = ["#f5d90a", "#ff9f1a", "#ff4d4f"];
    st.info.alarm_levels.forEach((v, i) => { if (v !== null && v !== undefined) lines.push({ value: v, label: tf("alarmLevel", { n: ["I", "II", "III"][i] || i + 1 }), colour: colours[i] || "#ff4d4f" }); });
  }
  return lines;
}

function limitText(st, m) {
  const lim = st.info.limits && st.info.limits[m];
  const has = (v) => v !== null && v !== undefined;
  if (lim && has(lim.min) && has(lim.max)) return `${fmtReading(lim.min)}–${fmtReading(lim.max)}`;
  if (lim && has(lim.max)) return `≤ ${fmtReading(lim.max)}`;
  if (lim && has(lim.min)) return `≥ ${fmtReading(lim.min)}`;
  if (m === "water_level" && Array.isArray(st.info.alarm_levels) && st.info.alarm_levels.some(has)) {
    return st.info.alarm_levels.map((v, i) => has(v) ? `${tf("alarmLevel", { n: ["I", "II", "III"][i] })} ${fmtReading(v)}` : "").filter(Boolean).join(" · ");
  }
  return "";
}

function outOfLimits(st, m, v) {
  const lim = st.info.limits && st.info.limits[m];
  if (v === null || v === undefined) return false;
  const first = m === "water_level" && Array.isArray(st.info.alarm_levels) ? st.info.alarm_levels.find((x) => x !== null && x !== undefined) : undefined;
  if (first !== undefined && v >= first) return true; // at or above alarm level I
  if (!lim) return false;
  return (lim.max !== null && lim.max !== undefined && v > lim.max) || (lim.min !== null && lim.min !== undefined && v < lim.min);
}

function sectorName(id) {
  const own = ((state.me && state.me.sectors) || []).find((s) => s.id === id);
  if (own) return (isEn() ? own.name_en : own.name_vi) || id;
  const key = "sector_" + id;
  return (I18N[state.lang] || I18N.vi)[key] ? t(key) : id;
}

function renderStationDetail() {
  const st = state.station;
  const section = $("#detail-station");
  if (!st || !section) return;
  const s = st.info;
  section.dataset.station = s.id; section.dataset.kind = s.kind || "";
  const kind = (I18N[state.lang] || I18N.vi)["kind_" + s.kind] ? t("kind_" + s.kind) : s.kind;
  const facts = [kind, s.ward ? zoneName(s.ward) : "", (s.sectors || []).map(sectorName).join(", "),
    s.cadence_s ? tf("cadence", { s: s.cadence_s }) : "", s.free_flow_kmh ? tf("freeFlow", { v: s.free_flow_kmh }) : ""].filter(Boolean);
  const heading = st.keepBody ? `<h3>${esc(s.name)} <small>${esc(s.id)}</small></h3>` : `<h2>${esc(s.name)} <small>${esc(s.id)}</small></h2>`;
  const metricButtons = st.metrics.length > 1 ? `<div class="metric-select" role="group" aria-label="${esc(t("metricWord"))}">${st.metrics.map((m) => `<button type="button" class="metric-button${m === st.metric ? " active" : ""}" data-metric="${esc(m)}">${esc(metricName(m))}</button>`).join("")}</div>` : "";
  const rangeButtons = st.metrics.length ? `<div class="range-select" role="group">${["all", "1h", "1d", "1w"].map((r) => `<button type="button" class="range-button${r === st.range ? " active" : ""}" data-range="${r}">${esc(t("range_" + r))}</button>`).join("")}</div>` : "";
  section.innerHTML = `${heading}<p class="st-facts">${facts.map(esc).join(" · ")}</p>
    <div class="st-live"></div>${metricButtons}${rangeButtons}<div class="st-detections"></div>`;
  renderStationLive();
  drawStationChart();
}

// The parts a new reading changes: status, last message, values, detections.
function renderStationLive() {
  const st = state.station;
  const section = $("#detail-station");
  if (!st || !section) return;
  const s = st.info, latest = s.latest;
  const live = section.querySelector(".st-live");
  if (!latest) {
    live.innerHTML = `<p class="st-status" data-status="">${esc(t("noMessage"))}</p>`;
  } else {
    const code = latest.status || "";
    const statusText = ["00", "01", "02"].includes(code) ? `${code} ${t("st_" + code)}` : code;
    const late = s.cadence_s && Date.now() - latest.ts > 3 * s.cadence_s * 1000;
    const values = Object.entries(latest.values || {}).filter(([m]) => m !== "confidence" || s.kind !== "camera");
    live.innerHTML = `<p class="st-status" data-status="${esc(code)}"><span>${esc(t("statusWord"))}: <b class="status-text">${esc(statusText)}</b></span>
      · <span class="st-last${late ? " late" : ""}">${esc(t("lastMessage"))}: ${esc(fmtClock(latest.ts))} (<span class="age" data-since="${latest.ts}">${esc(fmtAge(Date.now() - latest.ts))}</span>)${late ? ` — ${esc(t("late"))}` : ""}</span></p>
      ${values.length ? `<table class="st-values"><thead><tr><th>${esc(t("metricWord"))}</th><th>${esc(t("valueWord"))}</th><th>${esc(t("limitsWord"))}</th></tr></thead><tbody>
      ${values.map(([m, v]) => `<tr class="st-value${outOfLimits(st, m, v) ? " over" : ""}" data-metric="${esc(m)}"><td>${esc(metricName(m))}</td>
        <td class="v"><b>${esc(fmtReading(v))}</b> <span class="unit">${esc(unitOf(m))}</span></td><td class="lim">${esc(limitText(st, m))}</td></tr>`).join("")}</tbody></table>` : ""}`;
  }
  const box = section.querySelector(".st-detections");
  if (s.kind === "camera") {
    const rows = s.detections.slice(-20).reverse();
    box.innerHTML = `<h3>${esc(t("detections"))}</h3>` + (rows.length ? `<table class="detections"><tbody>${rows.map((d) => {
      const c = d.confidence === null || d.confidence === undefined ? "" : `${Math.round(d.confidence <= 1 ? d.confidence * 100 : d.confidence)} %`;
      const attrs = Object.entries(d.attrs || {}).map(([k, v]) => `${esc(detectionName(k))}: ${esc(typeof v === "object" ? JSON.stringify(v) : v)}`).join(", ");
      return `<tr class="detection-row" data-event="${esc(d.event)}"><td>${esc(fmtClock(d.ts))}</td><td><b>${esc(detectionName(d.event))}</b></td>
        <td class="confidence" title="${esc(t("confidence"))}">${c}</td><td class="attrs">${attrs}</td></tr>`;
    }).join("")}</tbody></table>` : `<p class="sub">${esc(t("noDetections"))}</p>`);
  } else box.innerHTML = "";
}

// ---- the chart -------------------------------------------------------------------------------
// The x range: ±30 minutes around a single reading; otherwise first to last reading, or the
// chosen span back from the last reading, never before the first.
function xRange(st) {
  const ts = st.ts;
  if (!ts.length) { const now = Date.now() / 1000; return [now - HALF_HOUR, now + HALF_HOUR]; }
  const first = ts[0], last = ts[ts.length - 1];
  if (first === last) return [first - HALF_HOUR, first + HALF_HOUR];
  const span = RANGES[st.range];
  return [span ? Math.max(first, last - span) : first, last];
}

function yRange(min, max, lines) {
  let lo = min, hi = max;
  for (const l of lines) { lo = lo === null || lo === undefined ? l.value : Math.min(lo, l.value); hi = hi === null || hi === undefined ? l.value : Math.max(hi, l.value); }
  if (lo === null || lo === undefined || !Number.isFinite(lo)) return [0, 1];
  if (lo === hi) { const pad = Math.abs(lo) * 0.1 || 1; return [lo - pad, hi + pad]; }
  const pad = (hi - lo) * 0.08;
  return [lo - pad, hi + pad];
}

function drawLimitLines(u, lines) {
  const { ctx, bbox } = u;
  const dpr = window.devicePixelRatio || 1;
  ctx.save();
  ctx.font = `${12 * dpr}px sans-serif`;
  for (const l of lines) {
    const y = u.valToPos(l.value, "y", true);
    if (!Number.isFinite(y) || y < bbox.top || y > bbox.top + bbox.height) continue;
    ctx.strokeStyle = l.colour; ctx.fillStyle = l.colour; ctx.lineWidth = 1.5 * dpr;
    ctx.setLineDash([6 * dpr, 4 * dpr]);
    ctx.beginPath(); ctx.moveTo(bbox.left, y); ctx.lineTo(bbox.left + bbox.width, y); ctx.stroke();
    ctx.textAlign = "right";
    ctx.fillText(`${l.label} ${fmtReading(l.value)}`, bbox.left + bbox.width - 4 * dpr, y - 4 * dpr);
  }
  ctx.restore();
}

// Time ticks in the page's locale, 24-hour: HH:MM, or the day when ticks are days apart.
function timeTicks(u, splits, axisIdx, space, incr) {
  return splits.map((v) => {
    const d = new Date(v * 1000);
    return incr >= 86400 ? d.toLocaleDateString(locale(), { day: "2-digit", month: "2-digit" })
      : d.toLocaleTimeString(locale(), { hour: "2-digit", minute: "2-digit", hour12: false });
  });
}

function drawStationChart() {
  const el = $("#detail-chart");
  if (state.detailChart) { state.detailChart.destroy(); state.detailChart = null; }
  el.innerHTML = "";
  const st = state.station;
  if (!st || !st.metric) { el.dataset.metric = ""; return; }
  const m = st.metric;
  const lines = limitLines(st, m);
  el.dataset.metric = m;
  el.insertAdjacentHTML("beforeend", `<p class="chart-title">${esc(tf("chartOf", { metric: metricName(m) }))}${unitOf(m) ? ` (${esc(unitOf(m))})` : ""}</p>`);
  const plot = document.createElement("div");
  el.appendChild(plot);
  const axis = { stroke: "#8b949e", grid: { stroke: "#30363d" }, ticks: { stroke: "#30363d" } };
  state.detailChart = new uPlot({
    width: Math.max(320, Math.min(660, ($("#detail").clientWidth || 640) - 40)), height: 230,
    legend: { show: false },
    scales: { x: { time: true, range: () => xRange(st) }, y: { range: (u, min, max) => yRange(min, max, lines) } },
    series: [{}, { label: metricName(m), stroke: "#58a6ff", width: 2, spanGaps: false,
      points: { show: (u) => u.data[0].length <= 30, size: 8, fill: "#58a6ff", stroke: "#58a6ff" } }],
    axes: [{ ...axis, values: timeTicks }, { ...axis, size: 56 }],
    hooks: { draw: [(u) => drawLimitLines(u, lines)] },
  }, [st.ts.slice(), st.values.get(m).slice()], plot);
  el.insertAdjacentHTML("beforeend", lines.length ? `<p class="limit-lines">${lines.map((l) => `<span class="limit-line" data-value="${l.value}" style="color:${l.colour}">┅ ${esc(l.label)} ${esc(fmtReading(l.value))} ${esc(unitOf(m))}</span>`).join(" ")}</p>` : "");
  if (!st.ts.length) el.insertAdjacentHTML("beforeend", `<p class="sub">${esc(t("noReadings"))}</p>`);
  markChart();
}

function updateChart() {
  const st = state.station;
  if (!st || !state.detailChart || !st.metric) { if (st && st.metric && !state.detailChart) drawStationChart(); return; }
  state.detailChart.setData([st.ts.slice(), st.values.get(st.metric).slice()]);
  markChart();
}

// What the chart shows, for tests: the x range (epoch s) and the number of readings.
function markChart() {
  const el = $("#detail-chart"), st = state.station;
  const [x0, x1] = xRange(st);
  el.dataset.xMin = String(Math.round(x0)); el.dataset.xMax = String(Math.round(x1));
  el.dataset.points = String(st.ts.length); el.dataset.range = st.range;
}

$("#detail-body").addEventListener("click", (e) => {
  const st = state.station;
  const metric = e.target.closest(".metric-button");
  const range = e.target.closest(".range-button");
  if (!st || (!metric && !range)) return;
  if (metric) st.metric = metric.dataset.metric;
  if (range) st.range = range.dataset.range;
  document.querySelectorAll("#detail-station .metric-button").forEach((b) => b.classList.toggle("active", b.dataset.metric === st.metric));
  document.querySelectorAll("#detail-station .range-button").forEach((b) => b.classList.toggle("active", b.dataset.range === st.range));
  if (metric) drawStationChart();
  else updateChart();
});
