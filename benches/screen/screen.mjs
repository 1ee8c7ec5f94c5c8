// Sensor-to-screen benchmark (run by benches/screen/run.sh, which starts the demo and the
// 20,000 msg/s burst): logs the city operator into the dashboard in headless Chromium, then
// publishes probe readings over MQTT (tests/browser/mqtt.mjs: a plain MQTT 3.1.1 client,
// QoS 0, no extra package) and times each from the moment before its
// bytes are written to the socket to the moment the page drew its alert's row
// (`window.__wf.rowDrawnAt`, taken inside the animation frame that inserts the row). Both
// stamps are the machine's wall clock (performance.timeOrigin + performance.now()).
// Prints p50/p90/p99/max and how many probes were drawn, and the pipeline's measured rate.
// Usage: node screen.mjs <http port> <mqtt port> <seconds> <probes per second> [server pid]
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "../../tests/browser/package.json"));
const { chromium } = require("playwright-core");
const { mqttConnect } = await import("../../tests/browser/mqtt.mjs");

const [httpPort, mqttPort, seconds = "60", perSecond = "2"] = process.argv.slice(2);
const base = `http://127.0.0.1:${httpPort}`;
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function received() {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = text.match(/^watchfloor_received_total (\d+)/m);
  return m ? Number(m[1]) : NaN;
}

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"] });
try {
  const page = await (await browser.newContext({ viewport: { width: 1920, height: 1080 } })).newPage();
  await page.goto(`${base}/?sound=0`);
  await page.fill("#login-token", "demo-city-operator");
  await page.click("#login-button");
  await page.waitForSelector("#conn-status[data-state=online]", { timeout: 60000 });
  await page.waitForFunction(() => window.__wf && window.__wf.markers.size > 0, null, { timeout: 60000 });
  await sleep(5000); // the burst reaches its rate
  const mqtt = await mqttConnect(mqttPort, `screen-bench-${process.pid}`);
  const sent = new Map();
  const run = `s${Date.now()}`;
  // The probes' rows drawn so far. Read every 5 s while probing too: a probe alert
  // resolves a minute after its reading and leaves the page, so a run longer than a minute
  // read only at its end would miss its first probes.
  const drawnOf = () => page.evaluate((prefix) => {
    const out = {};
    for (const a of window.__wf.alerts.values()) {
      if (a.rule !== "screen_probe" || !String(a.key).startsWith(prefix)) continue;
      const at = window.__wf.rowDrawnAt(a.alert_id);
      if (at) out[a.key] = { at, arrived: window.__wf.deltaArrivedAt(a.alert_id) };
    }
    return out;
  }, run);
  const drawn = {};
  let reading = false;
  const collector = setInterval(async () => {
    if (reading) return;
    reading = true;
    try { Object.assign(drawn, await drawnOf()); } catch (e) { /* the page is closing */ }
    reading = false;
  }, 5000);
  const total = Number(seconds) * Number(perSecond);
  const gap = 1000 / Number(perSecond);
  const before = await received();
  const started = now();
  let lastTs = 0;
  for (let n = 0; n < total; n++) {
    const due = started + n * gap;
    if (due > now()) await sleep(due - now());
    const ts = Math.max(Date.now(), lastTs + 1);
    lastTs = ts;
    const seq = `${run}-${n}`;
    const payload = JSON.stringify({ source: "CT-TR-01", kind: "traffic", ts, values: { speed: 2000 }, attrs: { seq } });
    sent.set(seq, now());
    mqtt.publish("ioc/bench/CT-TR-01/telemetry", payload);
  }
  const elapsed = (now() - started) / 1000;
  const rate = ((await received()) - before) / elapsed;
  // Every probe's row, or 10 s after the last publish.
  clearInterval(collector);
  for (let i = 0; i < 100 && Object.keys(drawn).length < total; i++) { Object.assign(drawn, await drawnOf()); await sleep(100); }
  mqtt.close();
  const lags = [], toPage = [], inPage = [];
  for (const [seq, at] of sent) {
    const d = drawn[seq];
    if (!d) continue;
    lags.push(d.at - at);
    if (d.arrived) { toPage.push(d.arrived - at); inPage.push(d.at - d.arrived); }
  }
  for (const l of [lags, toPage, inPage]) l.sort((a, b) => a - b);
  const qOf = (l, p) => l.length ? l[Math.min(l.length - 1, Math.floor(p * l.length))].toFixed(1) : "—";
  const q = (p) => qOf(lags, p);
  console.log(`pipeline: ${Math.round(rate).toLocaleString("en")} msg/s received while probing (${elapsed.toFixed(0)} s)`);
  console.log(`probes drawn: ${lags.length} of ${total}`);
  console.log(`publish → row drawn: p50 ${q(0.5)} ms, p90 ${q(0.9)} ms, p99 ${q(0.99)} ms, max ${lags.length ? lags[lags.length - 1].toFixed(1) : "—"} ms`);
  // Where the time went: publish → the alert's delta reached the page (broker, pipeline,
  // hub, socket, the page's event loop), then → its row drawn (the next frame).
  for (const [name, l] of [["publish → delta in page", toPage], ["delta in page → row drawn", inPage]])
    console.log(`${name}: p50 ${qOf(l, 0.5)} ms, p90 ${qOf(l, 0.9)} ms, p99 ${qOf(l, 0.99)} ms, max ${qOf(l, 1)} ms`);
  if (lags.length < total) process.exitCode = 1;
} finally {
  await browser.close();
}
