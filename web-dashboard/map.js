// The map: the city's communes and wards (/api/zones, SVG, each filled with the colour of
// its worst open alert and blinking when a serious one fires), the base map beneath the
// stations (/api/basemap: rivers, main roads, landmarks, labelled in the page's language),
// and the stations and cameras as canvas circle markers sized for a wall screen, coloured
// by their worst open alert and drawn in severity order (critical above major above minor
// above normal: a marker that changes is moved in the canvas's draw order, never the rest).
// Uses app.js's state and helpers; alerts.js keeps the per-station and per-commune indexes.
"use strict";

Object.assign(I18N.vi, { legendNormal: "bình thường" });
Object.assign(I18N.en, { legendNormal: "normal" });

// Marker radii (px) for a 1920×1080 wall: stations, cameras, and by alert severity.
const RADIUS = { station: 9, camera: 7 };
const ALERT_RADIUS = { info: 10, minor: 12, major: 13, critical: 14 };
const SEVERITIES = ["info", "minor", "major", "critical"]; // drawing order, lowest first
const ZONE_STYLE = { color: "#30363d", weight: 1, fillColor: "#12202b", fillOpacity: 0.9 };
const ZONE_ALERT_OPACITY = 0.35;

// The stations of each alert severity, in the order they were brought to the front.
const drawn = { severity: new Map(), sets: Object.fromEntries(SEVERITIES.map((s) => [s, new Set()])) };

async function buildMap() {
  if (state.map) return;
  // Everything the map needs first (a failure leaves no half-built map to retry).
  const [zones, stations] = await Promise.all([api("/api/zones"), api("/api/stations")]);
  api("/api/rules").then((rules) => {
    for (const r of rules) state.rules.set(r.id, r);
    renderAlerts(); refreshDetailLanguage();
  }).catch(() => { /* ids prettified instead */ });
  const map = L.map("map", { zoomControl: !state.wall, attributionControl: false, preferCanvas: true });
  state.map = map;
  // Panes, bottom to top: communes (SVG), base map (SVG), labels, then the stations'
  // canvas in the overlay pane (z-index 400), which alone takes the clicks.
  for (const [name, z] of [["zones", 300], ["basemap", 320], ["labels", 340]]) {
    const pane = map.createPane(name);
    pane.style.zIndex = String(z);
    pane.style.pointerEvents = "none";
  }
  // Two tiers: the city, then its communes and wards (level "commune"; "ward" in older
  // files). Legacy district polygons, if a file still has them, are not drawn.
  const commune = (f) => f.properties.level === "commune" || f.properties.level === "ward";
  const zoneRenderer = L.svg({ pane: "zones" });
  state.zoneLayers = new Map();
  const layer = L.geoJSON(zones, {
    filter: commune, renderer: zoneRenderer, interactive: false, style: { ...ZONE_STYLE },
    onEachFeature: (f, l) => { state.zoneLayers.set(f.properties.id ?? f.id, l); },
  }).addTo(map);
  state.zoneLayer = layer;
  const communes = zones.features.filter(commune);
  for (const f of communes) state.zones.set(f.properties.id ?? f.id, f.properties);
  state.zoneLabels = communes.map((f) => {
    const centre = state.zoneLayers.get(f.properties.id ?? f.id).getBounds().getCenter();
    return { props: f.properties, marker: L.marker(centre, { pane: "labels", interactive: false, keyboard: false, icon: zoneLabelIcon(f.properties) }).addTo(map) };
  });
  // An area's centre (communes, a cluster, a legacy district) opens on its own polygons,
  // outlined; the city's centres (every sector or a department) keep the whole city.
  const own = communes.filter((f) => ownsZone(f.properties.id ?? f.id, f.properties));
  state.ownZones = own.map((f) => f.properties.id ?? f.id);
  if (own.length) {
    state.focus = L.geoJSON({ type: "FeatureCollection", features: own }, {
      renderer: zoneRenderer, interactive: false, style: { color: "#79c0ff", weight: 3, opacity: 1, fill: false },
    }).addTo(map);
    map.fitBounds(state.focus.getBounds(), { padding: [30, 30] });
  } else {
    map.fitBounds(layer.getBounds(), { padding: [10, 10] });
  }
  state.homeBounds = own.length ? state.focus.getBounds() : layer.getBounds();
  for (const s of stations) {
    state.stations.set(s.id, s);
    const marker = L.circleMarker([s.lat, s.lon], { radius: s.kind === "camera" ? RADIUS.camera : RADIUS.station, weight: 1, color: "#0d1117", fillOpacity: 0.95, fillColor: s.latest ? COLOURS.ok : COLOURS.none });
    marker.wfId = s.id;
    marker.bindTooltip(() => `${esc(s.name)} <small>${esc(s.id)}</small>`);
    marker.on("click", () => { if (!state.wall) openStation(s.id); });
    marker.addTo(map);
    state.markers.set(s.id, marker);
  }
  renderLegend();
  drawBasemap(map);
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
  const name = isEn() && props.name_en ? props.name_en : props.name;
  return L.divIcon({ className: "zone-label", html: esc(name), iconSize: null });
}
function renderZoneLabels() {
  for (const { props, marker } of state.zoneLabels) marker.setIcon(zoneLabelIcon(props));
}

// Shows one commune (wall rotation, a fixed zone), or the account's home view.
function fitZone(id) {
  if (!state.map) return;
  const layer = id && state.zoneLayers.get(id);
  state.map.fitBounds(layer ? layer.getBounds() : state.homeBounds, { padding: [30, 30] });
}

// ---- base map -------------------------------------------------------------------------------
// Rivers (blue, `width`), roads (grey, rank 1 thicker than rank 2), landmarks (a symbol and
// a label), under the stations. A city without a base map (404) simply has none.
async function drawBasemap(map) {
  let geo;
  try { geo = await api("/api/basemap"); }
  catch (err) { $("#map").dataset.basemap = err.status === 404 ? "none" : "error"; return; }
  const features = (geo && geo.features) || [];
  L.geoJSON({ type: "FeatureCollection", features: features.filter((f) => f.geometry && !/Point$/.test(f.geometry.type)) }, {
    renderer: L.svg({ pane: "basemap" }), interactive: false,
    style: (f) => {
      const p = f.properties || {};
      if (p.kind === "river") return { color: "#2f6fb3", weight: Math.min(Math.max(Number(p.width) || 2, 2), 4) * 1.5, opacity: 0.9, lineCap: "round" };
      return p.rank === 1 ? { color: "#c9d1d9", weight: 3, opacity: 0.5 } : { color: "#8b949e", weight: 1.5, opacity: 0.45 };
    },
  }).addTo(map);
  state.baseLabels = [];
  for (const f of features) {
    const p = f.properties || {};
    const at = labelPoint(f.geometry);
    if (!at || !p.name) continue;
    if (p.kind === "road" && p.rank !== 1) continue; // the small roads stay unlabelled
    const marker = L.marker([at[1], at[0]], { pane: "labels", interactive: false, keyboard: false, icon: baseLabelIcon(p) }).addTo(map);
    state.baseLabels.push({ props: p, marker });
  }
  $("#map").dataset.basemap = "loaded";
}

// Where a feature's label goes: the point, or a line's middle vertex.
function labelPoint(g) {
  if (!g) return null;
  if (g.type === "Point") return g.coordinates;
  const line = g.type === "LineString" ? g.coordinates : g.type === "MultiLineString" ? g.coordinates[0] : null;
  return line && line.length ? line[Math.floor(line.length / 2)] : null;
}

function baseLabelIcon(p) {
  const name = isEn() && p.name_en ? p.name_en : p.name;
  const symbol = p.kind === "landmark" ? '<span class="symbol">◆</span>' : "";
  return L.divIcon({ className: `base-label base-${esc(p.kind || "other")}`, html: symbol + esc(name), iconSize: null });
}
function renderBaseLabels() {
  for (const { props, marker } of state.baseLabels || []) marker.setIcon(baseLabelIcon(props));
}

function renderLegend() {
  $("#legend").innerHTML = ["critical", "major", "minor", "ok", "none"].map((k) => `<span style="background:${COLOURS[k]}"></span>${esc(t(k === "none" ? "noData" : k === "ok" ? "legendNormal" : k))}`).join("");
}

// ---- station markers ---------------------------------------------------------------------------
function markerStyle(id, sev) {
  const s = state.stations.get(id);
  if (sev) return { radius: ALERT_RADIUS[sev] || RADIUS.station, weight: 2, color: "#f0f6fc", fillColor: COLOURS[sev], fillOpacity: 1 };
  return { radius: s && s.kind === "camera" ? RADIUS.camera : RADIUS.station, weight: 1, color: "#0d1117", fillOpacity: 0.95,
    fillColor: s && (s.latest || s.seen) ? COLOURS.ok : COLOURS.none };
}

// Restyles one marker; when its severity changed it moves in the draw order: an alert to
// the front, then every marker of a higher severity back above it; a normal one to the back.
function applyMarker(id, sev, reorder) {
  const marker = state.markers.get(id);
  if (!marker) return;
  marker.setStyle(markerStyle(id, sev));
  const prev = drawn.severity.get(id) || null;
  if (prev === sev) return;
  if (prev) drawn.sets[prev].delete(id);
  if (sev) { drawn.sets[sev].add(id); drawn.severity.set(id, sev); } else drawn.severity.delete(id);
  if (!reorder) return;
  if (!sev) { marker.bringToBack(); return; }
  marker.bringToFront();
  for (const higher of SEVERITIES.slice(SEVERITIES.indexOf(sev) + 1)) bringSetToFront(higher);
}

function bringSetToFront(sev) {
  for (const id of drawn.sets[sev]) { const m = state.markers.get(id); if (m) relinkToFront(m); }
}

// Moves a marker to the end of the canvas's draw list without asking for a redraw: Leaflet
// 1.9's bringToFront also repaints the marker's box, and re-fronting hundreds of markers
// spread over the map would repaint the whole canvas (10,000 markers) on every delta. The
// order of these markers among themselves does not change; only the marker that changed
// (brought to front with a repaint of its box, where the overlapping ones are redrawn in
// list order) moved relative to them.
function relinkToFront(layer) {
  const r = layer._renderer, order = layer._order;
  if (!r || !order || !r._drawLast) { layer.bringToFront(); return; }
  const next = order.next, prev = order.prev;
  if (!next) return; // already last
  next.prev = prev;
  if (prev) prev.next = next; else r._drawFirst = next;
  order.prev = r._drawLast;
  r._drawLast.next = order;
  order.next = null;
  r._drawLast = order;
}

// After a snapshot: every marker once, then the alerting ones to the front by severity
// (each restyled marker repaints its own box, in the new order).
function refreshAllMarkers() {
  state.markers.forEach((_, id) => applyMarker(id, stationSeverity(id), false));
  SEVERITIES.forEach(bringSetToFront);
}

// The worst open alert of a station colours its marker; only that marker is restyled.
function refreshMarker(stationId) {
  applyMarker(stationId, stationSeverity(stationId), true);
}

// The station drawn on top at the moment (the canvas draws its list in order).
function topMarker() {
  const any = state.markers.values().next().value;
  const renderer = any && any._renderer;
  const last = renderer && renderer._drawLast;
  return last && last.layer ? last.layer.wfId ?? null : null;
}

// ---- commune fills -------------------------------------------------------------------------
// A commune takes the colour of its worst open alert (its stations' and its own).
function refreshZone(id) {
  const layer = state.zoneLayers && state.zoneLayers.get(id);
  if (!layer) return;
  const sev = zoneSeverity(id);
  const fillColor = sev ? COLOURS[sev] : ZONE_STYLE.fillColor;
  if (layer.options.fillColor !== fillColor) layer.setStyle({ fillColor, fillOpacity: sev ? ZONE_ALERT_OPACITY : ZONE_STYLE.fillOpacity });
  if (layer._path) layer._path.dataset.severity = sev || "";
}
function refreshAllZones() {
  if (state.zoneLayers) state.zoneLayers.forEach((_, id) => refreshZone(id));
}
function zoneColour(id) {
  const layer = state.zoneLayers && state.zoneLayers.get(id);
  return layer ? layer.options.fillColor : null;
}

// A commune blinks with its alert's row (alerts.js's timer switches it).
const zonesFlashing = new Map(); // zone id → until (ms)
function flashZone(id) {
  zonesFlashing.set(id, Date.now() + FLASH_MS);
}
// On or off now; false once no commune blinks any more.
function blinkZones(on, now) {
  for (const [id, until] of zonesFlashing) {
    const live = until > now;
    const layer = state.zoneLayers && state.zoneLayers.get(id);
    if (layer && layer._path) layer._path.classList.toggle("zone-flash", on && live);
    if (!live) zonesFlashing.delete(id);
  }
  return zonesFlashing.size > 0;
}
// Is the commune's path lit now (for tests: `__wf.zoneLit(id)`)?
function zoneLit(id) {
  const layer = state.zoneLayers && state.zoneLayers.get(id);
  return Boolean(layer && layer._path && layer._path.classList.contains("zone-flash"));
}
