// Recordings against `framewire demo` (its archive node records `bars` in
// 10 s segments): run with ui.test.mjs by `cargo test -p framewire --test
// browser browser_ui` (FW_URL, FW_VIEWER, FW_OPERATOR, FW_ARTIFACTS,
// CHROMIUM).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { launch, login } from './helpers.mjs';

const URL = process.env.FW_URL;
const [viewName, viewPass] = (process.env.FW_VIEWER ?? '').split(':');
const [opName, opPass] = (process.env.FW_OPERATOR ?? '').split(':');
const ART = process.env.FW_ARTIFACTS ?? '.';

/** The recordings view, the last 15 minutes of `demo:archive / bars`. */
async function openBars(page) {
  await page.locator('#view-recordings').click();
  await page.locator('#rec-window').selectOption('900000');
  const option = page.locator('#rec-stream option', { hasText: 'demo:archive / bars' });
  await option.waitFor({ state: 'attached' });
  await page.locator('#rec-stream').selectOption({ label: await option.textContent() });
}

test('a viewer finds a recording on its timeline and plays a range of it', async () => {
  const browser = await launch();
  try {
    const page = await login(browser, URL, viewName, viewPass);
    await page.locator('#view-recordings').click();
    assert.equal(await page.locator('#app').isVisible(), false);
    await page.locator('#rec-window').selectOption('900000');
    const option = page.locator('#rec-stream option', { hasText: 'demo:archive / bars' });
    await option.waitFor({ state: 'attached' });
    await page.locator('#rec-stream').selectOption({ label: await option.textContent() });
    // A finished 10 s segment: the demo may have run less than that yet.
    const closed = page.locator('#rec-timeline rect.seg-closed').first();
    const deadline = Date.now() + 45_000;
    while (await closed.count() === 0) {
      assert.ok(Date.now() < deadline, 'no finished segment of the demo archive in 45 s');
      await page.waitForTimeout(1000);
      await page.locator('#rec-refresh').click();
    }
    assert.match(await page.locator('#rec-summary').textContent(), /\d+ segments? \(\d+ s finished\), \d+ gaps?/);
    // A viewer cannot stop a recording: no button, and the server says no.
    assert.equal(await page.locator('#rec-toggle').isVisible(), false);
    const refused = await page.evaluate(async () => {
      const s = await (await fetch('/api/session')).json();
      return (await fetch('/api/nodes/demo%3Aarchive/archives/bars/recording', {
        method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': s.csrf }, body: '{"recording":false}',
      })).status;
    });
    assert.equal(refused, 403);
    const title = await closed.locator('title').textContent();
    assert.match(title, /\d+ frames, [\d.]+ MB, closed$/);
    await page.locator('#recordings').screenshot({ path: join(ART, 'recordings.png') });

    // A click on the segment picks it as the range; Play shows it.
    await closed.click();
    const [from, to] = await page.evaluate(() => [document.querySelector('#rec-from').value, document.querySelector('#rec-to').value]);
    assert.ok(from && to && from < to, `${from} – ${to}`);
    assert.ok(Number(await page.locator('#rec-selection').getAttribute('width')) > 0, 'the range is not drawn');
    // The range as one file: Matroska, its frames as stored.
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#rec-download').click()]);
    assert.match(download.suggestedFilename(), /^bars-\d{8}T\d{6}\.\d{3}Z\.mkv$/);
    const file = readFileSync(await download.path());
    assert.deepEqual([...file.subarray(0, 4)], [0x1a, 0x45, 0xdf, 0xa3], 'not a Matroska file');
    assert.ok(file.length > 20_000, `${file.length} bytes for 10 s of 320x240 MJPEG`);

    await page.locator('#rec-range button[type=submit]').click();
    const canvas = '#rec-players .preview[data-recording="bars"] canvas';
    await page.waitForFunction((sel) => Number(document.querySelector(sel)?.dataset.sequence ?? -1) >= 0, canvas, { timeout: 20_000 });
    const seq = async () => Number(await page.locator(canvas).getAttribute('data-sequence'));
    const s1 = await seq();
    await page.waitForFunction(([sel, s]) => Number(document.querySelector(sel).dataset.sequence) >= s + 10, [canvas, s1], { timeout: 10_000 });
    assert.deepEqual(await page.evaluate((sel) => [document.querySelector(sel).width, document.querySelector(sel).height], canvas), [320, 240]);
    assert.match(await page.locator('#rec-players .rec-caption').textContent(), /demo:archive \/ bars: .* playing as play-\d+/);
    assert.equal(await page.locator(canvas).getAttribute('data-latency-ms'), null, 'old pictures measured as latency');
    await page.locator('#recordings').screenshot({ path: join(ART, 'recordings-playing.png') });

    // Closing the player stops the playback on the node.
    const stopped = page.waitForResponse((r) => r.request().method() === 'DELETE' && r.url().includes('/playbacks/play-'));
    await page.locator('#rec-players .preview button[title="close"]').click();
    assert.equal((await stopped).status(), 200);
    await page.waitForFunction(() => !document.querySelector('#rec-players .preview'));
  } finally {
    await browser.close();
  }
});

test('an operator stops a recording and starts it again: the pause is a gap on the timeline', async () => {
  const browser = await launch();
  try {
    const page = await login(browser, URL, opName, opPass);
    await openBars(page);
    const toggle = page.locator('#rec-toggle');
    await toggle.waitFor();
    assert.equal(await toggle.textContent(), 'Stop recording');
    await toggle.click();
    await page.locator('#rec-toggle', { hasText: 'Start recording' }).waitFor({ timeout: 10_000 });
    assert.match(await page.locator('#rec-stream option:checked').textContent(), /paused\)$/);
    await page.waitForTimeout(2000);
    await toggle.click();
    await page.locator('#rec-toggle', { hasText: 'Stop recording' }).waitFor({ timeout: 10_000 });
    const gap = page.locator('#rec-timeline rect.rec-gap[data-reason="paused"]');
    await gap.waitFor({ timeout: 10_000 });
    assert.match(await gap.locator('title').textContent(), /^gap .*: paused \(recording paused at run time/);
    await page.locator('#recordings').screenshot({ path: join(ART, 'recordings-paused.png') });
  } finally {
    await browser.close();
  }
});

test('a viewer picks a segment and plays it with the keyboard alone', async () => {
  const browser = await launch();
  try {
    const page = await login(browser, URL, viewName, viewPass);
    await openBars(page);
    await page.locator('#rec-timeline rect.seg-closed').first().waitFor({ timeout: 45_000 });
    // From the stream picker, Tab to the first finished segment.
    await page.locator('#rec-stream').focus();
    const tabTo = async (what, test) => {
      for (let i = 0; i < 300; i++) {
        if (await page.evaluate(test)) return;
        await page.keyboard.press('Tab');
      }
      assert.fail(`Tab never reached ${what}`);
    };
    await tabTo('a finished segment', () => document.activeElement?.matches?.('rect.seg-closed') ?? false);
    const [start, end, label] = await page.evaluate(() => {
      const r = document.activeElement;
      return [Number(r.dataset.start), Number(r.dataset.end), r.getAttribute('aria-label')];
    });
    assert.match(label, /^segment .* frames, .* closed: Enter picks it as the range$/);
    await page.keyboard.press('Enter');
    const [from, to] = await page.evaluate(() => [new Date(document.querySelector('#rec-from').value).getTime(),
      new Date(document.querySelector('#rec-to').value).getTime()]);
    // The range fields hold local times to the second.
    assert.ok(Math.abs(from - start) < 1000 && Math.abs(to - end) < 1000, `${from}–${to} for the segment ${start}–${end}`);
    await tabTo('Play', () => document.activeElement?.matches?.('#rec-range button[type=submit]') ?? false);
    await page.keyboard.press('Enter');
    const canvas = '#rec-players .preview[data-recording="bars"] canvas';
    await page.waitForFunction((sel) => Number(document.querySelector(sel)?.dataset.sequence ?? -1) >= 0, canvas, { timeout: 20_000 });
  } finally {
    await browser.close();
  }
});
