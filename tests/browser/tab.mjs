// Holds one console tab open on a topic page (for bench/console-memory.sh):
// opens http://HTTP/console/topic?name=TOPIC in Debian's headless chromium,
// waits for the live tail to go live, keeps the tab open until SECONDS
// have passed, then closes it. Prints one JSON line: the tail's batches and
// events received (counted in the page) and how long the tab was open.
//
// Usage: node tab.mjs HTTP TOPIC SECONDS
import { chromium } from "playwright-core";

const [http, topic, seconds] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
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
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(30000);
  await page.goto(`http://${http}/console/topic?name=${encodeURIComponent(topic)}`);
  await page.waitForSelector("#tail-live.on");
  // Count what the tail adds, in the page.
  await page.evaluate(() => {
    window.__tail = { items: 0, skipped: 0 };
    new MutationObserver((changes) => {
      for (const c of changes) {
        for (const n of c.addedNodes) {
          if (n.classList && n.classList.contains("skipped")) {
            window.__tail.skipped++;
          } else if (n.nodeName === "LI") {
            window.__tail.items++;
          }
        }
      }
    }).observe(document.getElementById("tail"), { childList: true });
  });
  const opened = Date.now();
  await new Promise((r) => setTimeout(r, Number(seconds) * 1000));
  const counts = await page.evaluate(() => window.__tail);
  const onPage = await page.locator("#tail li").count();
  await page.close();
  console.log(
    JSON.stringify({
      open_s: (Date.now() - opened) / 1000,
      events_shown: counts.items,
      skip_notes: counts.skipped,
      items_on_page_at_end: onPage,
    }),
  );
} finally {
  await browser.close();
}
