// End-to-end: `watchfloor demo` → headless Chromium (Debian's, driven by playwright-core).
// Two operators of the same ward log in; the scripted camera fire in Long Hòa appears on
// both screens; the first acknowledges it; the second sees the acknowledgement live.
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
step("PASSED");
await finish(0);
