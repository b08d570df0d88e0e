// The browser's side of `framewire bench latency` (docs/latency.md): how
// old the pictures are that headless Chromium draws, read from the time
// code in them by the web UI's own reader (latency.js).
//
//   node web-tests/bench-latency.mjs mjpeg URL SECONDS [PAGE]
//     URL is multipart MJPEG over HTTP (framewire's /stream/…, or a peer's);
//     an <img> shows it, and on every animation frame the page draws the
//     <img> on a canvas and reads the code: capture to drawn. PAGE is
//     opened first (a page of framewire's web server, which refuses cross-site
//     requests, so the picture is asked for from its own page).
//   node web-tests/bench-latency.mjs live UI NODE STREAM SECONDS
//     UI is a framewire web UI in open mode; the page opens the live view
//     (WebRTC, WHEP) of NODE/STREAM, and after SECONDS reads what it
//     reported to the controller (GET /api/latency).
//
// Prints one JSON object: {frames, p50_ms, p95_ms, p99_ms}.
// Chromium: CHROMIUM (default /usr/bin/chromium).
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const [mode, ...args] = process.argv.slice(2);
const here = dirname(fileURLToPath(import.meta.url));
const reader = readFileSync(join(here, '../crates/framewire-web/assets/latency.js'), 'utf8');

const quantiles = (ages) => {
  const v = [...ages].sort((a, b) => a - b);
  const q = (x) => v[Math.round((v.length - 1) * x)];
  return { frames: v.length, p50_ms: q(0.5), p95_ms: q(0.95), p99_ms: q(0.99) };
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  timeout: 60_000,
  // The page reads pixels of a picture from another port (a peer's server).
  args: ['--no-sandbox', '--disable-gpu', '--disable-web-security', '--allow-loopback-in-peer-connection',
    '--no-first-run', '--disable-background-networking'],
});
const fail = (why) => { console.error(`bench-latency: ${why}`); process.exit(1); };
const timer = setTimeout(() => fail('gave up after 120 s'), 120_000);
try {
  const page = await (await browser.newContext({ viewport: { width: 1400, height: 900 }, bypassCSP: true })).newPage();
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  if (mode === 'mjpeg') {
    const [url, seconds, first] = args;
    if (first) {
      await page.goto(first);
      await page.evaluate(() => { document.body.innerHTML = '<img id="v"><canvas id="c"></canvas>'; });
    } else {
      await page.setContent('<img id="v"><canvas id="c"></canvas>');
    }
    // The web UI's reader, as a module; its functions on window.
    await page.addScriptTag({ type: 'module', content: `${reader}\nwindow.fw = { readTimeCode, ageOf };` });
    await page.waitForFunction(() => window.fw);
    const ages = await page.evaluate(([src, ms]) => new Promise((done) => {
      const img = document.getElementById('v'), canvas = document.getElementById('c');
      const ctx = canvas.getContext('2d', { willReadFrequently: true });
      const ages = [];
      let last = null, until = 0;
      img.src = src;
      const frame = () => {
        if (img.naturalWidth) {
          if (!until) until = performance.now() + ms;
          if (canvas.width !== img.naturalWidth) { canvas.width = img.naturalWidth; canvas.height = img.naturalHeight; }
          ctx.drawImage(img, 0, 0);
          const code = window.fw.readTimeCode(ctx, canvas.width, canvas.height);
          if (code && code.sequence !== last) { last = code.sequence; ages.push(window.fw.ageOf(code)); }
        }
        if (until && performance.now() > until) { img.src = ''; done(ages); } else requestAnimationFrame(frame);
      };
      requestAnimationFrame(frame);
    }), [url, Number(seconds) * 1000]);
    if (ages.length < 10) fail(`only ${ages.length} pictures with a code were drawn from ${url}`);
    // The first second is warm-up.
    console.log(JSON.stringify(quantiles(ages.slice(Math.min(30, ages.length >> 2)))));
  } else if (mode === 'live') {
    const [ui, node, stream, seconds] = args;
    await page.goto(ui);
    await page.locator('#conn.on').waitFor({ timeout: 30_000 });
    await page.locator(`#graph g.node[data-node="${node}"]`).click({ timeout: 30_000 });
    await page.locator(`#node-head button.live-btn[data-stream="${stream}"]`).click({ timeout: 30_000 });
    const sel = `.preview.live[data-node="${node}"][data-stream="${stream}"] video`;
    await page.waitForFunction((s) => Number(document.querySelector(s)?.dataset.frames ?? 0) > 30, sel, { timeout: 30_000 });
    await page.waitForTimeout(Number(seconds) * 1000);
    const got = await (await page.request.get(new URL('/api/latency', ui).href)).json();
    const p = got.paths.find((x) => x.node === node && x.stream === stream && x.path === 'whep');
    if (!p) fail(`no figures of the live view in ${JSON.stringify(got)}`);
    console.log(JSON.stringify({ frames: p.frames, p50_ms: p.p50_ms, p95_ms: p.p95_ms, p99_ms: p.p99_ms }));
  } else {
    fail(`unknown mode ${mode}: mjpeg URL SECONDS, or live UI NODE STREAM SECONDS`);
  }
} catch (e) {
  fail(e.message);
} finally {
  clearTimeout(timer);
  await browser.close();
}
