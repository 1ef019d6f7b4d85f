// Opens one URL in a headless Chromium and lets the browser follow everything (redirects and
// sign-in pages that post themselves, such as the test IdP's SAML responses) until it arrives,
// then exits: the browser of a command-line OpenID Connect client (kubelogin's
// `--browser-command`, which runs `COMMAND URL` and waits for the redirect to its loopback
// listener or, with the device grant, for the command to end).
//
//   node follow.mjs URL
//
// Done when the page's URL matches FOLLOW_DONE_URL (a regular expression; by default a
// loopback redirect carrying `code=` or `error=`, as an authorization response to a native
// client is), or when its text contains FOLLOW_DONE_TEXT (if set). On the way it types
// FOLLOW_PASSWORD into a `#password` field and clicks `#signin` (the test IdP's sign-in form),
// and clicks each selector of FOLLOW_CLICK (separated by newlines) once it shows (a consent or
// device-approval button). Exits 0 when done, 1 after FOLLOW_TIMEOUT_MS (default 30000) with the
// page's URL and text on stderr. Each URL visited is appended to FOLLOW_LOG (if set), one a line;
// the browser's cookies at the end are written to FOLLOW_COOKIES (if set) as Playwright's JSON
// (name, value, domain, path, …), so that a test can go on where the browser stopped.
// Environment as for driver.mjs: PLAYWRIGHT_DIR (folder with node_modules/playwright-core),
// CHROMIUM (binary, default /usr/bin/chromium).
import { appendFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(`${process.env.PLAYWRIGHT_DIR}/`);
const { chromium } = require('playwright-core');

const start = process.argv[2];
if (!start) {
  process.stderr.write('usage: node follow.mjs URL\n');
  process.exit(2);
}
const doneUrl = new RegExp(process.env.FOLLOW_DONE_URL
  || '^http://(localhost|127\\.0\\.0\\.1|\\[::1\\])(:[0-9]+)?/?[^#]*[?&](code|error)=');
const doneText = process.env.FOLLOW_DONE_TEXT || '';
const password = process.env.FOLLOW_PASSWORD || '';
const clicks = (process.env.FOLLOW_CLICK || '').split('\n').filter((s) => s !== '');
const timeoutMs = Number(process.env.FOLLOW_TIMEOUT_MS || 30000);
const log = (url) => {
  if (process.env.FOLLOW_LOG) appendFileSync(process.env.FOLLOW_LOG, `${url}\n`);
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--ignore-certificate-errors', '--disable-gpu', '--no-first-run'],
});
const context = await browser.newContext({ ignoreHTTPSErrors: true });
const page = await context.newPage();
// The loopback listener may answer the final redirect and close at once, so the page may
// never show it: arrival is the browser asking for that URL, and done is its answer (or its
// failure, or 5 s later), so that the request is not cut off by closing the browser.
let arrivedAt = 0;
let answered = false;
const mainNavigation = (request) => request.isNavigationRequest() && request.frame() === page.mainFrame();
page.on('request', (request) => {
  if (mainNavigation(request)) {
    log(request.url());
    if (doneUrl.test(request.url())) arrivedAt = arrivedAt || Date.now();
  }
});
for (const event of ['requestfinished', 'requestfailed']) {
  page.on(event, (request) => {
    if (mainNavigation(request) && doneUrl.test(request.url())) answered = true;
  });
}
const arrived = () => answered || (arrivedAt !== 0 && Date.now() - arrivedAt > 5000);

async function text() {
  try {
    return await page.evaluate(() => (document.body ? document.body.innerText : ''));
  } catch {
    return ''; // mid-navigation
  }
}

async function visible(selector) {
  try {
    return await page.locator(selector).first().isVisible();
  } catch {
    return false;
  }
}

let code = 1;
try {
  page.goto(start, { timeout: timeoutMs }).catch(() => {}); // progress is checked below
  const clicked = new Set();
  let typed = false;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (arrived() || (doneText && (await text()).includes(doneText))) {
      code = 0;
      break;
    }
    if (password && !typed && (await visible('#password'))) {
      typed = true;
      await page.fill('#password', password).catch(() => {});
      await page.click('#signin').catch(() => {});
    }
    for (const selector of clicks) {
      if (!clicked.has(selector) && (await visible(selector))) {
        clicked.add(selector);
        await page.click(selector).catch(() => {});
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  if (process.env.FOLLOW_COOKIES) {
    writeFileSync(process.env.FOLLOW_COOKIES, JSON.stringify(await context.cookies()));
  }
  if (code !== 0) {
    process.stderr.write(`follow.mjs: not done after ${timeoutMs} ms; at ${page.url()}: ${JSON.stringify(await text())}\n`);
  }
} finally {
  await browser.close().catch(() => {});
}
process.exit(code);
