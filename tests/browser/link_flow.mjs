// Drive the patient's side of linking in headless Chromium: open the signed link URL, click
// "Allow" on the (sandbox) provider consent page, and report where the browser ends up.
// Usage: node link_flow.mjs <link_url> [allow|deny]  → prints one JSON line.
import { chromium } from "playwright-core";

const [linkUrl, choice = "allow"] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const page = await browser.newPage();
  await page.goto(linkUrl, { waitUntil: "load" });
  const consentUrl = page.url();
  await page.click(choice === "deny" ? "#deny" : "#allow");
  await page.waitForSelector("#result", { timeout: 20000 });
  const result = await page.$eval("#result", (el) => ({
    status: el.dataset.status,
    title: el.textContent.trim(),
  }));
  const message = await page.$eval("#message", (el) => el.textContent.trim());
  const reason = await page.$$eval("#reason", (els) => (els[0] ? els[0].textContent.trim() : null));
  console.log(JSON.stringify({ ...result, message, reason, consentUrl, finalUrl: page.url() }));
} finally {
  await browser.close();
}
