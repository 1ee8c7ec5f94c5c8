// Dashboard map benchmark: `watchfloor demo` with a 10,000-station registry, the city
// admin's dashboard in headless Chromium; reports the time to a populated map and the
// main-thread long tasks (> 50 ms) while live updates arrive.
// Usage: node map.mjs <watchfloor binary> <pipeline file> <http port> <mqtt port> <data dir> [seconds]
import { createRequire } from "node:module";
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "../../tests/browser/package.json"));
const { chromium } = require("playwright-core");

const [bin, pipeline, httpPort, mqttPort, dataDir, seconds = "30"] = process.argv.slice(2);
const base = `http://127.0.0.1:${httpPort}`;
const demo = spawn(bin, ["demo", "--pipeline", pipeline, "--http-port", httpPort, "--mqtt-port", mqttPort, "--data-dir", dataDir], { stdio: "ignore", cwd: path.join(here, "../..") });
try {
  for (let i = 0; i < 300; i++) { try { if ((await fetch(`${base}/healthz`)).ok) break; } catch {} await new Promise((r) => setTimeout(r, 100)); }
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"] });
  const page = await (await browser.newContext({ viewport: { width: 1920, height: 1080 } })).newPage();
  await page.addInitScript(() => {
    window.__long = [];
    new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__long.push(e.duration); }).observe({ type: "longtask", buffered: true });
  });
  await page.goto(base + "/");
  const t0 = Date.now();
  await page.fill("#login-token", "demo-admin");
  await page.click("#login-button");
  await page.waitForFunction(() => window.__wf && window.__wf.markers.size >= 10000, null, { timeout: 120000 });
  const ready = Date.now() - t0;
  const snapshotLong = await page.evaluate(() => window.__long.splice(0));
  const restyle = await page.evaluate(() => { const t = performance.now(); window.__wf.refreshAll(); return performance.now() - t; });
  await page.waitForTimeout(Number(seconds) * 1000);
  const live = await page.evaluate(() => ({ long: window.__long.splice(0), alerts: window.__wf.alerts.size }));
  const max = (xs) => xs.length ? Math.max(...xs).toFixed(0) : "0";
  console.log(`map of 10,000 stations ready ${ready} ms after login; long tasks while loading: ${snapshotLong.length} (max ${max(snapshotLong)} ms)`);
  console.log(`restyling every marker: ${restyle.toFixed(1)} ms`);
  console.log(`${seconds} s of live updates (${live.alerts} alerts held): ${live.long.length} long tasks (max ${max(live.long)} ms)`);
  await browser.close();
} finally {
  demo.kill("SIGKILL");
}
