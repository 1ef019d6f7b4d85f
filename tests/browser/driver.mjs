// Drives a headless Chromium for tests/browser.rs. Reads one JSON command per line on stdin
// and answers one JSON line on stdout:
//   {"goto": URL, "waitFor": TEXT, "timeoutMs": N}  navigate, then wait until the page's text
//                                                  contains TEXT (redirects and auto-posting
//                                                  forms are followed by the browser itself)
//   {"fill": {SELECTOR: VALUE}, "click": SELECTOR, "waitFor": TEXT, "timeoutMs": N}
//                                                  fill in fields of the current page, click,
//                                                  then wait as above
//   {"quit": true}
// Answer: {"url": the page's URL, "text": its visible text, "found": whether TEXT appeared}.
// Environment: PLAYWRIGHT_DIR (folder with node_modules/playwright-core), CHROMIUM (binary).
import { createRequire } from 'node:module';
import readline from 'node:readline';

const require = createRequire(`${process.env.PLAYWRIGHT_DIR}/`);
const { chromium } = require('playwright-core');

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--ignore-certificate-errors', '--disable-gpu', '--no-first-run'],
});
const context = await browser.newContext({ ignoreHTTPSErrors: true });
const page = await context.newPage();

async function text() {
  try {
    return await page.evaluate(() => document.body ? document.body.innerText : '');
  } catch {
    return ''; // mid-navigation
  }
}

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  const cmd = JSON.parse(line);
  if (cmd.quit) break;
  let error = null;
  try {
    if (cmd.goto) {
      await page.goto(cmd.goto, { timeout: cmd.timeoutMs || 15000 });
    }
    for (const [selector, value] of Object.entries(cmd.fill || {})) {
      await page.fill(selector, value, { timeout: cmd.timeoutMs || 15000 });
    }
    if (cmd.click) {
      await page.click(cmd.click, { timeout: cmd.timeoutMs || 15000 });
    }
  } catch (e) {
    error = String(e.message || e);
  }
  const deadline = Date.now() + (cmd.timeoutMs || 15000);
  let body = await text();
  while (cmd.waitFor && !body.includes(cmd.waitFor) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    body = await text();
  }
  process.stdout.write(JSON.stringify({
    url: page.url(),
    text: body,
    found: cmd.waitFor ? body.includes(cmd.waitFor) : true,
    error,
  }) + '\n');
}
await browser.close();
