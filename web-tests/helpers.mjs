// What the browser test files share: a headless Chromium and a logged-in page.
import { chromium } from 'playwright-core';

/** Headless Chromium (CHROMIUM, default /usr/bin/chromium), WebRTC on loopback allowed. */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    timeout: 60_000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--allow-loopback-in-peer-connection'],
  });
}

/** A page of `url` logged in as `name`, once the live graph is connected;
 *  `prepare(page)`, if given, runs before the page loads (routes). */
export async function login(browser, url, name, password, prepare) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  if (prepare) await prepare(page);
  await page.goto(url);
  await page.locator('#login-name').fill(name);
  await page.locator('#login-password').fill(password);
  await page.locator('#login-form button[type=submit]').click();
  await page.locator('#conn.on').waitFor();
  return page;
}

/** Waits up to `ms` for `check()` to return true, looking every 100 ms;
 *  fails saying `what` and the last thing `check` returned otherwise. */
export async function until(what, check, ms = 10_000) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    last = await check();
    if (last === true) return;
    if (Date.now() > end) throw new Error(`waited ${ms} ms for ${what}: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
