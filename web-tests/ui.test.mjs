// Browser tests of the controller's web UI in headless Chromium.
//
// Run by `cargo test -p framewire --test browser`, which starts
// `framewire demo` with two users and passes:
//   FW_URL       the controller's URL
//   FW_OPERATOR  "name:password" of an operator
//   FW_VIEWER    "name:password" of a viewer
//   FW_ARTIFACTS where screenshots go (target/browser-artifacts)
// Chromium: CHROMIUM (default /usr/bin/chromium).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const URL = process.env.FW_URL;
const [opName, opPass] = (process.env.FW_OPERATOR ?? '').split(':');
const [viewName, viewPass] = (process.env.FW_VIEWER ?? '').split(':');
const ART = process.env.FW_ARTIFACTS ?? 'browser-artifacts';
const STEP = 20_000;

let browser;

before(async () => {
  assert.ok(URL, 'FW_URL is not set: run through cargo test -p framewire --test browser');
  mkdirSync(ART, { recursive: true });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    timeout: 60_000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    // playwright gives every launch a fresh temporary profile (user data dir).
  });
});

after(async () => {
  await browser?.close();
});

async function login(name, password) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP);
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  await page.goto(URL);
  await page.locator('#login-name').fill(name);
  await page.locator('#login-password').fill(password);
  await page.locator('#login-form button[type=submit]').click();
  await page.locator('#app').waitFor({ state: 'visible' });
  await page.locator('#conn.on').waitFor();
  return { context, page };
}

/** The preview canvas's pixels, reduced to a grey value per 8x8 block. */
async function pixels(page, selector) {
  return page.evaluate((sel) => {
    const c = document.querySelector(sel);
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const out = [];
    for (let y = 0; y < c.height; y += 8) {
      for (let x = 0; x < c.width; x += 8) {
        const i = (y * c.width + x) * 4;
        out.push(d[i] + d[i + 1] + d[i + 2]);
      }
    }
    return out;
  }, selector);
}

test('a wrong password is refused', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(STEP);
  await page.goto(URL);
  await page.locator('#login-name').fill(opName);
  await page.locator('#login-password').fill(`${opPass}-wrong`);
  await page.locator('#login-form button[type=submit]').click();
  await page.locator('#login-error', { hasText: 'wrong user name or password' }).waitFor();
  assert.equal(await page.locator('#app').isVisible(), false);
  await context.close();
});

test('an operator sees the demo graph, wires an edge, previews it live, unwires it', async () => {
  const { context, page } = await login(opName, opPass);
  for (const n of ['demo:source', 'demo:relay', 'demo:viewer', 'demo:archive']) {
    await page.locator(`#graph g.node[data-node="${n}"]`).waitFor();
  }
  // The demo's edges are there with live figures.
  await page.locator('#edges tbody tr[data-edge-id="demo:viewer/bars"]').waitFor();

  // Wire demo:source/bars straight to demo:viewer as "direct".
  await page.locator('#wire-from').selectOption({ label: 'demo:source / bars' });
  await page.locator('#wire-to').selectOption('demo:viewer');
  await page.locator('#wire-local').fill('direct');
  await page.locator('#wire-mode').selectOption('low-latency');
  await page.locator('#wire-priority').fill('200');
  await page.locator('#wire-submit').click();
  const row = page.locator('#edges tbody tr[data-edge-id="demo:viewer/direct"]');
  await row.waitFor();
  assert.equal(await page.locator('#wire-error').textContent(), '', 'wiring reported an error');
  await page.locator('#edges tbody tr[data-edge-id="demo:viewer/direct"] td', { hasText: /^live$/ }).waitFor({ timeout: 30_000 });
  await page.locator('#graph g.edge[data-edge-id="demo:viewer/direct"]').waitFor();

  // Preview it from the node panel.
  await page.locator('#graph g.node[data-node="demo:viewer"]').click();
  await page.locator('#node-describe dl').waitFor();
  await page.locator('#node-head button.preview-btn[data-stream="direct"]').click({ timeout: 30_000 });
  const canvasSel = '.preview[data-node="demo:viewer"][data-stream="direct"] canvas';
  await page.waitForFunction((sel) => Number(document.querySelector(sel)?.dataset.sequence ?? -1) >= 0, canvasSel);
  const seq1 = Number(await page.locator(canvasSel).getAttribute('data-sequence'));
  const a = await pixels(page, canvasSel);
  await page.locator(canvasSel).screenshot({ path: join(ART, 'preview-1.png') });
  await page.waitForTimeout(1500);
  const seq2 = Number(await page.locator(canvasSel).getAttribute('data-sequence'));
  const b = await pixels(page, canvasSel);
  await page.locator(canvasSel).screenshot({ path: join(ART, 'preview-2.png') });
  assert.ok(seq2 > seq1, `the preview did not advance: sequence ${seq1} then ${seq2}`);
  assert.equal(a.length, b.length);
  assert.ok(a.some((v) => v > 30), 'the preview is black');
  const changed = a.filter((v, i) => Math.abs(v - b[i]) > 30).length;
  assert.ok(changed > 0, 'the preview image did not change in 1.5 s');
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(ART, 'controller.png') });

  // Unwire it.
  await page.locator('button.unwire[data-edge-id="demo:viewer/direct"]').click();
  await row.waitFor({ state: 'detached', timeout: 30_000 });
  await context.close();
});

test('a viewer sees the graph and cannot wire', async () => {
  const { context, page } = await login(viewName, viewPass);
  await page.locator('#graph g.node[data-node="demo:relay"]').waitFor();
  assert.equal(await page.locator('#wire-form').isVisible(), false, 'the wire form is shown to a viewer');
  assert.equal(await page.locator('button.unwire').count(), 0, 'unwire buttons are shown to a viewer');
  // Even going around the UI, the server says no.
  const status = await page.evaluate(async () => {
    const s = await (await fetch('/api/session')).json();
    const r = await fetch('/api/edges', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrf-token': s.csrf },
      body: JSON.stringify({ from: 'demo:source', stream: 'bars', to: 'demo:viewer', local_name: 'sneaky' }),
    });
    return r.status;
  });
  assert.equal(status, 403);
  await page.screenshot({ path: join(ART, 'viewer.png') });
  await context.close();
});
