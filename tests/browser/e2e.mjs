// End-to-end: `watchfloor demo` → headless Chromium (Debian's, driven by playwright-core).
// Two operators of the same ward log in; the scripted camera fire in Long Hòa appears on
// both screens; the first acknowledges it; the second sees the acknowledgement live. Then a
// department centre (the environment sector, city-wide) and a commune centre (ward Tân An,
// every sector) on a 1920×1080 wall screen: each its own title and indicator tiles, the
// department without the fire (public safety's), the commune's data-quality ranking.
// Usage: node e2e.mjs <watchfloor binary> <http port> <mqtt port> <data dir> [screenshot]
import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";

const [bin, httpPort, mqttPort, dataDir, screenshot] = process.argv.slice(2);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const base = `http://127.0.0.1:${httpPort}`;
const step = (what) => console.log(`[e2e] ${new Date().toISOString()} ${what}`);

const demo = spawn(bin, ["demo", "--http-port", httpPort, "--mqtt-port", mqttPort, "--data-dir", dataDir], {
  cwd: root, stdio: ["ignore", "inherit", "inherit"],
});
let browser;
const finish = async (code) => {
  if (browser) await browser.close().catch(() => {});
  demo.kill("SIGINT");
  setTimeout(() => { demo.kill("SIGKILL"); process.exit(code); }, 2000);
};
process.on("unhandledRejection", async (e) => { console.error("[e2e] FAILED:", e); await finish(1); });

async function waitHealthy() {
  for (let i = 0; i < 300; i++) {
    try { if ((await fetch(`${base}/healthz`)).ok) return; } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("the demo did not start");
}

async function login(context, token) {
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error("[page error]", e.message));
  await page.goto(base + "/");
  await page.fill("#login-token", token);
  await page.click("#login-button");
  await page.waitForSelector("#conn-status[data-state=online]", { timeout: 30000 });
  return page;
}

await waitHealthy();
step("demo is up");
browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const first = await login(await browser.newContext({ viewport: { width: 1600, height: 900 } }), "demo-operator-long-hoa-1");
const second = await login(await browser.newContext({ viewport: { width: 1600, height: 900 } }), "demo-operator-long-hoa-2");
step("both operators logged in");

const fire = '.alert-item[data-rule="camera_fire_smoke"][data-key="CT-CAM-01"]';
await first.waitForSelector(fire, { timeout: 120000 });
await second.waitForSelector(fire, { timeout: 30000 });
step("the scripted fire alert is on both screens");
await first.click(`${fire} .ack-button`);
await first.waitForSelector(`${fire}[data-state=acknowledged]`, { timeout: 15000 });
step("acknowledged by the first operator");
// The second session never reloads: the acknowledgement arrives over its WebSocket.
await second.waitForSelector(`${fire}[data-state=acknowledged]`, { timeout: 15000 });
const meta = await second.textContent(`${fire} .meta`);
if (!meta.includes("long-hoa-operator-1")) throw new Error(`the second screen does not say who acknowledged: ${meta}`);
step("the second operator sees the acknowledgement live");

// The history view finds it in the incident store and opens it with its timeline.
await first.click("#history-open");
const row = '#history .history-row[data-state=acknowledged]';
await first.waitForSelector(row, { timeout: 15000 });
const rowText = await first.textContent(row);
if (!rowText.includes("camera_fire_smoke") || !rowText.includes("CT-CAM-01")) throw new Error(`history row: ${rowText}`);
await first.click(row);
await first.waitForFunction(() => document.querySelector("#detail-body")?.textContent.includes("acknowledged"), null, { timeout: 15000 });
step("the history view lists the acknowledged fire and opens its timeline");
await first.click("#detail-close");
await first.click("#h-close");

// An operator of another ward does not see it.
const other = await (await fetch(`${base}/api/alerts`, { headers: { Authorization: "Bearer demo-operator-tan-an" } })).json();
if (other.some((a) => a.key === "CT-CAM-01")) throw new Error("an alert outside the Tân An scope was shown to its operator");

if (screenshot) {
  await first.waitForTimeout(1500);
  await first.screenshot({ path: screenshot });
  step(`screenshot saved to ${screenshot}`);
}

// A department centre: the environment department sees its indicators, not transport's,
// and not the fire (a public-safety alert).
const wall = { viewport: { width: 1920, height: 1080 } };
const department = await login(await browser.newContext(wall), "demo-environment-department");
await department.waitForSelector("#centre-title[data-centre=department]", { timeout: 15000 });
await department.waitForSelector("#kpis #kpi-discharge_compliance", { timeout: 15000 });
if (await department.$("#kpis #kpi-congestion_index")) throw new Error("a transport indicator on the environment department's screen");
await department.waitForTimeout(2000);
if (await department.$(fire)) throw new Error("the fire (public safety) on the environment department's screen");
const title = await department.textContent("#centre-title");
if (!title.includes("Sở Nông nghiệp và Môi trường")) throw new Error(`department title: ${title}`);
step(`the department centre shows "${title}" with its own indicators`);

// A commune centre: Tân An's tiles, and its data-quality ranking.
const commune = await login(await browser.newContext(wall), "demo-viewer-tan-an");
await commune.waitForSelector("#centre-title[data-centre=area]", { timeout: 15000 });
await commune.waitForSelector("#kpis[data-zone=tan_an] #kpi-open_alerts", { timeout: 15000 });
const communeTitle = await commune.textContent("#centre-title");
if (!communeTitle.includes("Tân An")) throw new Error(`commune title: ${communeTitle}`);
await commune.click("#quality-open");
await commune.waitForSelector("#quality .quality-row[data-level=station]", { timeout: 15000 });
const stations = await commune.$$eval("#quality .quality-row[data-level=station]", (rows) => rows.map((r) => r.dataset.id));
const tanAn = ["CT-AIR-06", "CT-HY-01", "CT-TR-21", "CT-TR-22", "CT-TR-23", "CT-TR-24", "CT-CAM-21", "CT-CAM-22", "CT-CAM-23", "CT-CAM-24", "SYT-FEED"];
if (stations.some((id) => !tanAn.includes(id))) {
  throw new Error(`a station outside Tân An in its quality ranking: ${stations}`);
}
step(`the commune centre "${communeTitle}" ranks its ${stations.length} stations' data quality`);
if (screenshot) {
  const dir = path.dirname(screenshot);
  await department.screenshot({ path: path.join(dir, "department-centre.png") });
  await commune.click("#q-close");
  await commune.waitForTimeout(500);
  await commune.screenshot({ path: path.join(dir, "commune-centre.png") });
  await commune.click("#quality-open");
  await commune.waitForSelector("#quality .quality-row[data-level=station]", { timeout: 15000 });
  await commune.screenshot({ path: path.join(dir, "commune-quality.png") });
  step("department and commune centre screenshots saved");
}
step("PASSED");
await finish(0);
