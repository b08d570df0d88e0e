// The multiview page against `framewire demo`: run with ui.test.mjs by
// `cargo test -p framewire --test browser browser_ui` (FW_URL, FW_VIEWER,
// FW_OPERATOR, FW_ARTIFACTS, CHROMIUM).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { launch, login } from './helpers.mjs';

const URL = process.env.FW_URL;
const [viewName, viewPass] = (process.env.FW_VIEWER ?? '').split(':');
const [opName, opPass] = (process.env.FW_OPERATOR ?? '').split(':');
const ART = process.env.FW_ARTIFACTS ?? '.';

const tile = (node, stream) => `#mv-grid .tile[data-node="${node}"][data-stream="${stream}"]`;

/** Waits until the tile's picture has advanced by `n` frames and says how old it is. */
async function advancing(page, sel, n) {
  const count = (s) => {
    const t = document.querySelector(s);
    const c = t?.querySelector('canvas'), v = t?.querySelector('video');
    return Number((v ? v.dataset.frames : c?.dataset.sequence) ?? -1);
  };
  await page.waitForFunction(count, sel, { timeout: 30_000 });
  const a = await page.evaluate(count, sel);
  await page.waitForFunction(([s, a, n]) => {
    const t = document.querySelector(s);
    const c = t?.querySelector('canvas'), v = t?.querySelector('video');
    return Number((v ? v.dataset.frames : c?.dataset.sequence) ?? -1) >= a + n;
  }, [sel, a, n], { timeout: 10_000 });
  return page.locator(sel).locator('[data-latency-ms]').getAttribute('data-latency-ms', { timeout: 10_000 });
}

test('a viewer watches streams side by side, each with its latency, one full screen', async () => {
  const browser = await launch();
  try {
    const page = await login(browser, URL, viewName, viewPass);
    await page.locator('#view-multiview').click();
    assert.equal(await page.locator('#app').isVisible(), false, 'the graph stays shown');
    assert.equal(await page.locator('#view-multiview').getAttribute('aria-pressed'), 'true');
    // H.264 plays over WebRTC, MJPEG as the JPEG preview: the page picks.
    for (const v of ['demo:source/bars-h264', 'demo:source/bars']) {
      await page.locator('#mv-stream').selectOption(v);
      await page.locator('#mv-form button[type=submit]').click();
    }
    const h264 = tile('demo:source', 'bars-h264'), mjpeg = tile('demo:source', 'bars');
    await page.locator(`${h264} .preview.live video`).waitFor();
    await page.locator(`${mjpeg} .preview canvas`).waitFor();
    assert.equal(await page.locator(`${h264} [data-webrtc-failed]`).count(), 0);
    const [l1, l2] = await Promise.all([advancing(page, h264, 20), advancing(page, mjpeg, 10)]);
    console.log(`# multiview latency p50: WebRTC ${l1} ms, MJPEG ${l2} ms`);
    for (const l of [l1, l2]) assert.ok(Number(l) > 0 && Number(l) < 500, `tile latency ${l} ms`);
    assert.match(await page.locator(`${mjpeg} .bar`).textContent(), /ms old \(p50\)/);
    assert.equal(await page.locator('#mv-grid').evaluate((g) => getComputedStyle(g).gridTemplateColumns.split(' ').length), 2);
    assert.match(await page.evaluate(() => location.hash), /^#multiview=demo%3Asource\/bars-h264,demo%3Asource\/bars$/);
    await page.locator('#multiview').screenshot({ path: join(ART, 'multiview.png') });

    // Full screen by the button, and back; by the keyboard on a focused tile.
    await page.locator(`${mjpeg} .mv-full`).click();
    await page.waitForFunction((s) => document.fullscreenElement === document.querySelector(s), mjpeg);
    await advancing(page, mjpeg, 5);
    await page.evaluate(() => document.exitFullscreen());
    await page.waitForFunction(() => !document.fullscreenElement);
    await page.locator(h264).focus();
    await page.keyboard.press('f');
    await page.waitForFunction((s) => document.fullscreenElement === document.querySelector(s), h264);
    await page.evaluate(() => document.exitFullscreen());

    // The address holds the tiles: a reload (a wall screen's bookmark) opens them again.
    await page.reload();
    await page.locator('#conn.on').waitFor();
    await advancing(page, mjpeg, 5);
    await page.locator(`${h264} video`).waitFor();
    // Closing a tile takes it out of the grid and the address.
    await page.locator(`${mjpeg} button[title="close"]`).click();
    await page.locator(mjpeg).waitFor({ state: 'detached' });
    assert.match(await page.evaluate(() => location.hash), /^#multiview=demo%3Asource\/bars-h264$/);
    await page.locator('#view-graph').click();
    assert.equal(await page.locator('#graph').isVisible(), true);
  } finally {
    await browser.close();
  }
});

test('an operator opens the same wall from its address: the tiles play for every role', async () => {
  const browser = await launch();
  try {
    const page = await login(browser, URL, opName, opPass);
    await page.goto(new globalThis.URL('#multiview=demo%3Asource/bars', URL).href);
    await page.reload();
    await page.locator('#conn.on').waitFor();
    const mjpeg = tile('demo:source', 'bars');
    const latency = await advancing(page, mjpeg, 5);
    assert.ok(Number(latency) > 0 && Number(latency) < 500, `tile latency ${latency} ms`);
    assert.equal(await page.locator('#app').isVisible(), false, 'the multiview is shown');
  } finally {
    await browser.close();
  }
});
