// Browser tests of the operators' consoles in headless Chromium, driven by
// cmd/auraos/browser_test.go against a running `auraos serve --admin-ui`.
//
//   node browser.mjs console SERVER_URL
//   node browser.mjs adminui SERVER_URL
//
// Environment: CONSOLE_USER and CONSOLE_PASSWORD (the operators'
// credentials), SOCKET_ID and ROOM (a connected user's socket and the
// Socket.IO room it is in, for adminui), UI_ADDR (host:port where adminui
// serves the Admin UI's page: an origin the server allows, since the page
// connects with credentials), CHROMIUM (default
// /usr/bin/chromium), SCREENSHOT_DIR (when set, each scenario saves a PNG
// there). A scenario prints "ok <scenario>" and exits 0, or prints why it
// failed and exits 1.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { io } from "socket.io-client";

const [scenario, serverURL] = process.argv.slice(2);
const user = process.env.CONSOLE_USER || "admin";
const password = process.env.CONSOLE_PASSWORD;
const shots = process.env.SCREENSHOT_DIR;
const timeout = 30000;
let lastPage = null; // for a screenshot of a failure

function fail(msg) {
  throw new Error(msg);
}

async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

async function screenshot(page, name) {
  if (shots) await page.screenshot({ path: join(shots, name), animations: "disabled" });
}

// A user who says something in the lobby, with the official client.
function chatter() {
  return new Promise((resolve, reject) => {
    const s = io(serverURL, { transports: ["websocket"], reconnection: false });
    const profile = { uid: "bob", email: "bob@example.com", displayName: "Bob" };
    s.on("connect_error", reject);
    s.on("connect", async () => {
      const join = await s.emitWithAck("join_chat_room", { roomName: "lobby", userProfile: profile });
      if (!join.ok) return reject(new Error("join_chat_room: " + JSON.stringify(join)));
      resolve({
        say: (text) => s.emitWithAck("send_message", { roomName: "lobby", message: text, userProfile: profile }),
        close: () => s.disconnect(),
      });
    });
  });
}

async function consoleScenario(browser) {
  const ctx = await browser.newContext({ httpCredentials: { username: user, password }, viewport: { width: 960, height: 600 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(timeout);

  // Logged in: the user the test connected is online.
  await page.goto(serverURL + "/console/users");
  await page.locator("#users").getByText("alice", { exact: true }).waitFor();

  // A message appears in the event log live, without a reload.
  await page.goto(serverURL + "/console/events");
  if (!(await page.locator("#follow").isChecked())) fail("follow is not on");
  const bob = await chatter();
  const text = "live from the browser test";
  const ack = await bob.say(text);
  if (!ack.ok) fail("send_message: " + JSON.stringify(ack));
  const row = page.locator("#events tbody tr.new", { hasText: "MessagePosted" }).first();
  await row.waitFor();
  await screenshot(page, "console-events.png");

  // Open it: its data, metadata and causation chain.
  await row.locator("a").first().click();
  await page.locator("#event-data", { hasText: text }).waitFor();
  await page.locator("#event-metadata", { hasText: "correlationId" }).waitFor();
  await page.locator("#chain tr.current").waitFor();

  // A rebuild starts from the page and shows its progress until it is done.
  await page.goto(serverURL + "/console/projections");
  const line = page.locator('#projections tr[data-name="chat-history"]');
  await line.getByRole("button", { name: "Rebuild" }).click();
  await line.locator(".progress-text", { hasText: /rebuilt: \d+ events/ }).waitFor();
  if ((await line.locator("progress").getAttribute("value")) !== "100") {
    fail("the finished rebuild's progress is not 100");
  }
  await page.locator("#chain-head", { hasText: /Head at \d+: [0-9a-f]{64}/ }).waitFor();
  await screenshot(page, "console-projections.png");
  bob.close();
  await ctx.close();
}

// serveStatic serves the Admin UI's built page (ui/dist of the npm package)
// on a free loopback port.
async function serveStatic() {
  const root = fileURLToPath(new URL("node_modules/@socket.io/admin-ui/ui/dist/", import.meta.url));
  const types = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png" };
  const srv = createServer(async (req, res) => {
    let path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
    if (path === "/") path = "/index.html";
    try {
      const body = await readFile(join(root, path));
      res.writeHead(200, { "Content-Type": types[extname(path)] || "application/octet-stream" });
      res.end(body);
    } catch {
      res.writeHead(404);
      res.end();
    }
  });
  const [host, port] = (process.env.UI_ADDR || "127.0.0.1:0").split(":");
  await new Promise((resolve) => srv.listen(Number(port), host, resolve));
  return { url: `http://${host}:${srv.address().port}/`, close: () => srv.close() };
}

async function adminUIScenario(browser) {
  const sid = process.env.SOCKET_ID || fail("SOCKET_ID is not set");
  const room = process.env.ROOM || fail("ROOM is not set");
  const ui = await serveStatic();
  try {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    const page = await ctx.newPage();
    page.setDefaultTimeout(timeout);
    lastPage = page;
    await page.goto(ui.url);

    // The UI's connection form: server URL, username, password.
    await page.getByLabel("Server URL").fill(serverURL);
    await page.getByLabel("Username").fill(user);
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Connect" }).click();
    await page.locator(".v-dialog__content--active").waitFor({ state: "detached" });

    // The sockets page lists the user's socket; its page lists its rooms.
    await page.goto(ui.url + "#/sockets/");
    await page.getByText(sid).first().waitFor();
    await page.goto(ui.url + "#/n/" + encodeURIComponent("/") + "/sockets/" + encodeURIComponent(sid));
    await page.getByText(room, { exact: true }).first().waitFor();
    await screenshot(page, "admin-ui-socket.png");
    await page.goto(ui.url + "#/rooms/");
    await page.getByText(room, { exact: true }).first().waitFor();
    await ctx.close();
  } finally {
    ui.close();
  }
}

const scenarios = { console: consoleScenario, adminui: adminUIScenario };

async function main() {
  if (!scenarios[scenario] || !serverURL) fail("usage: node browser.mjs console|adminui SERVER_URL");
  if (!password) fail("CONSOLE_PASSWORD is not set");
  const browser = await launch();
  await scenarios[scenario](browser);
  await browser.close();
  console.log("ok " + scenario);
}

main().then(
  () => process.exit(0),
  async (err) => {
    console.error(scenario + ": " + (err && err.stack ? err.stack : err));
    if (shots && lastPage) await lastPage.screenshot({ path: join(shots, "failed-" + scenario + ".png") }).catch(() => {});
    process.exit(1);
  },
);
