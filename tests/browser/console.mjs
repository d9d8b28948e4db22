// The web console in a real browser (issue 23): Debian's chromium, headless,
// driven by playwright-core. Logs in, watches a topic's publish rate move
// while events are published, opens a decoded event, publishes from the
// form (a bad event first: the error shows in place) and sees the event in
// the live tail, stops and runs a managed subscription and moves its
// committed position. Saves a screenshot of each page.
//
// Usage: node console.mjs HTTP_ADDR TOKEN USER PASSWORD SCREENSHOT_DIR
// (run.sh starts the server and passes these). Prints one PASS/FAIL line per
// step and `N passed, N failed`; exits non-zero on a failure.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const [http, token, user, password, shots] = process.argv.slice(2);
const base = `http://${http}`;
const topic = "/event/Order_Event__e";
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
mkdirSync(shots, { recursive: true });

let passed = 0;
let failed = 0;
async function step(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`PASS ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e && e.message ? e.message.split("\n")[0] : e}`);
  }
}
function check(ok, what) {
  if (!ok) {
    throw new Error(what);
  }
}

// Publishes one order over REST as an integration would (Bearer token).
async function publishOrder(n) {
  const r = await fetch(`${base}/services/data/v62.0/sobjects/Order_Event__e/`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ OrderNumber__c: `B-${n}`, Amount__c: n, Status__c: "New" }),
  });
  check(r.status === 201, `REST publish answered ${r.status}: ${await r.text()}`);
}

const browser = await chromium.launch({
  executablePath: chromiumPath,
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
page.setDefaultTimeout(20000);
const consoleErrors = [];
page.on("console", (m) => {
  // A refused login (401) and a refused event (400) are pages this test
  // asks for; any other error is the console's.
  const expected = /Failed to load resource: .* status of (400|401) /;
  if (m.type() === "error" && !expected.test(m.text())) {
    consoleErrors.push(m.text());
  }
});
page.on("pageerror", (e) => consoleErrors.push(String(e)));

try {
  await step("log in with the org's user", async () => {
    await page.goto(`${base}/console`);
    check(page.url().endsWith("/console/login"), `not sent to the login: ${page.url()}`);
    await page.screenshot({ path: `${shots}/login.png` });
    await page.fill("#password", "not-the-password");
    await page.fill("#username", user);
    await page.click("button[type=submit]");
    await page.waitForSelector(".error");
    await page.fill("#password", password);
    await page.click("button[type=submit]");
    await page.waitForURL(`${base}/console`);
    await page.waitForSelector(`tr[data-topic="${topic}"]`);
  });

  await step("the topic's publish rate moves while events are published", async () => {
    const rate = page.locator(`tr[data-topic="${topic}"] [data-field="rate"]`);
    const events = page.locator(`tr[data-topic="${topic}"] [data-field="events"]`);
    const before = Number(await events.textContent());
    await page.waitForSelector("#live.on");
    // Publish for a few seconds while the page is open.
    const until = Date.now() + 6000;
    let n = 0;
    while (Date.now() < until) {
      await publishOrder(++n);
    }
    await page.waitForFunction(
      ([sel, min]) => Number(document.querySelector(sel).textContent) >= min,
      [`tr[data-topic="${topic}"] [data-field="events"]`, before + n],
    );
    await page.waitForFunction(
      (sel) => document.querySelector(sel).textContent !== "0.0/s",
      `tr[data-topic="${topic}"] [data-field="rate"]`,
    );
    const d = await page.getAttribute(`tr[data-topic="${topic}"] .spark path`, "d");
    check(d && d.length > 2, `no sparkline: ${d}`);
    console.log(`     ${n} events published; rate shown ${await rate.textContent()}`);
    await page.screenshot({ path: `${shots}/overview.png`, fullPage: true });
  });

  await step("open a decoded event on the topic page", async () => {
    await page.click(`tr[data-topic="${topic}"] a`);
    await page.waitForSelector("#topic-page");
    await page.waitForSelector("#tail-live.on");
    const first = page.locator("#browse li").first();
    await first.locator("summary").click();
    const json = await first.locator("pre").textContent();
    check(json.includes('"OrderNumber__c": "B-1"'), `decoded event: ${json}`);
    check(json.includes('"Status__c": "New"'), `decoded event: ${json}`);
    check((await page.locator("#schemas li").count()) >= 1, "no schema listed");
  });

  await step("a bad event from the form shows its error in place", async () => {
    await page.fill("#payload", '{"Amount__c": "a lot"}');
    await page.click("#publish-form button[type=submit]");
    await page.waitForSelector("#publish-error");
    const err = await page.textContent("#publish-error");
    check(err.includes("Amount__c"), `error: ${err}`);
    check((await page.inputValue("#payload")).includes("a lot"), "the text was not kept");
  });

  await step("publish from the form and see the event in the live tail", async () => {
    await page.fill("#payload", '{"OrderNumber__c": "FORM-1", "Amount__c": 9.5}');
    await page.click("#publish-form button[type=submit]");
    await page.waitForSelector(".notice");
    const notice = await page.textContent(".notice");
    const m = notice.match(/Published event ([0-9a-f]{16})/);
    check(m, `notice: ${notice}`);
    const li = page.locator(`#tail li[data-replay-id="${m[1]}"]`);
    await li.waitFor();
    await li.locator("summary").click();
    const json = await li.locator("pre").textContent();
    check(json.includes("FORM-1"), `tail event: ${json}`);
    await page.screenshot({ path: `${shots}/topic.png` });
    await page.screenshot({ path: `${shots}/topic-full.png`, fullPage: true });
  });

  await step("stop and run the managed subscription", async () => {
    await page.click('nav a[href="/console/consumers"]');
    const row = page.locator("#managed tr[data-managed]", { hasText: "Order_Processor" });
    await row.waitFor();
    await row.locator('button[value="stop"]').click();
    await page.waitForSelector(".notice");
    check((await page.textContent(".notice")).includes("is now STOP"), "not stopped");
    check((await row.locator(".state-STOP").count()) === 1, "the row does not say STOP");
    await row.locator('button[value="run"]').click();
    await page.waitForSelector(".notice");
    check((await page.textContent(".notice")).includes("is now RUN"), "not running");
  });

  await step("move the managed subscription's committed position", async () => {
    const row = page.locator("#managed tr[data-managed]", { hasText: "Order_Processor" });
    const form = row.locator("form", { has: page.locator('input[name="position"]') });
    await form.locator('input[name="position"]').fill("0000000000000003");
    // Without the confirmation the browser does not send it.
    await form.locator('button[type="submit"]').click();
    check(!(await page.locator(".notice").count()) || !(await page.textContent(".notice")).includes("committed position"), "moved without confirmation");
    await form.locator('input[name="confirm"]').check();
    await form.locator('button[type="submit"]').click();
    await page.waitForSelector(".notice");
    const notice = await page.textContent(".notice");
    check(notice.includes("committed position is now 0000000000000003"), `notice: ${notice}`);
    await page.screenshot({ path: `${shots}/consumers.png`, fullPage: true });
  });

  await step("no script errors on any page", async () => {
    check(consoleErrors.length === 0, consoleErrors.join(" | "));
  });
} finally {
  await browser.close();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
