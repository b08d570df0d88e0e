// How old the pictures are that this page draws: the time code in
// test-pattern pictures (docs/latency.md), the ages reported to the
// controller (POST /api/latency), and the latency view: every path's
// figures from GET /api/latency, a histogram, and a line per node in the
// graph.

// ---- the time code --------------------------------------------------------

/** CRC-8, polynomial 0x07. */
function crc8(bytes) {
  let crc = 0;
  for (const b of bytes) {
    crc ^= b;
    for (let i = 0; i < 8; i++) crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
  }
  return crc;
}

/** Reads the time code off a drawn canvas (the band from 2/3 to 3/4 of its
 *  height, 2 rows of 34 cells): { timeUs, sequence } or null. The same
 *  geometry and rules as framewire_media::timecode. */
export function readTimeCode(ctx, w, h) {
  const COLS = 34, ROWS = 2;
  if (w < COLS * 2 || h < 24) return null;
  const top = Math.floor((h * 2) / 3), bottom = Math.floor((h * 3) / 4), bh = bottom - top;
  const d = ctx.getImageData(0, top, w, bh).data;
  const mean = (row, col) => {
    const x0 = Math.floor((col * w) / COLS), x1 = Math.floor(((col + 1) * w) / COLS);
    const y0 = Math.floor((row * bh) / ROWS), y1 = Math.floor(((row + 1) * bh) / ROWS);
    const xa = x0 + Math.floor((x1 - x0) / 4), xb = Math.max(x1 - Math.floor((x1 - x0) / 4), xa + 1);
    const ya = y0 + Math.floor((y1 - y0) / 4), yb = Math.max(y1 - Math.floor((y1 - y0) / 4), ya + 1);
    let sum = 0, n = 0;
    for (let y = ya; y < yb; y++) {
      for (let x = xa; x < xb; x++) {
        const i = (y * w + x) * 4;
        sum += (d[i] * 77 + d[i + 1] * 150 + d[i + 2] * 29) >> 8;
        n++;
      }
    }
    return Math.floor(sum / Math.max(n, 1));
  };
  const bytes = [];
  for (let row = 0; row < ROWS; row++) {
    const white = mean(row, 0), black = mean(row, 1);
    if (white < black + 64) return null;
    const mid = Math.floor((white + black) / 2);
    for (let byte = 0; byte < 4; byte++) {
      let v = 0;
      for (let bit = 0; bit < 8; bit++) v = (v << 1) | (mean(row, 2 + byte * 8 + bit) > mid ? 1 : 0);
      bytes.push(v);
    }
  }
  if (crc8(bytes.slice(0, 7)) !== bytes[7]) return null;
  let timeUs = 0;
  for (let i = 0; i < 5; i++) timeUs = timeUs * 256 + bytes[i];
  return { timeUs, sequence: bytes[5] * 256 + bytes[6] };
}

/** How old (ms) a picture with `code` is now, on this host's clock. */
export function ageOf(code) {
  const span = 2 ** 40;
  const nowUs = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  let t = nowUs - (nowUs % span) + code.timeUs;
  if (t > nowUs) t -= span;
  return (nowUs - t) / 1000;
}

/** Keeps the last 100 ages; the median, or null. */
export function ageMeter() {
  const ages = [];
  return (age) => {
    if (age !== null && age < 10000) { ages.push(age); if (ages.length > 100) ages.shift(); }
    return ages.length ? [...ages].sort((a, b) => a - b)[Math.floor(ages.length / 2)] : null;
  };
}


// ---- reports to the controller ----------------------------------------------

/** Ages noted since the last report, per JSON [node, stream, path]. */
const noted = new Map();

/** Notes one drawn picture's age (ms) on a path: 'preview',
 *  'preview-h264' or 'whep'. */
export function note(node, stream, path, age) {
  if (age === null || !(age >= 0 && age <= 60000)) return;
  const key = JSON.stringify([node, stream, path]);
  let ages = noted.get(key);
  if (!ages) noted.set(key, (ages = []));
  if (ages.length < 600) ages.push(Math.round(age * 100) / 100);
}

/** Sends what was noted every 2 s through `post(body)` (a promise). */
export function startReporting(post) {
  setInterval(() => {
    for (const [key, ages] of noted) {
      noted.delete(key);
      const [node, stream, path] = JSON.parse(key);
      post({ node, stream, path, ages_ms: ages }).catch(() => {});
    }
  }, 2000);
}

// ---- the latency view -----------------------------------------------------

const SVG = 'http://www.w3.org/2000/svg';
let paths = [];
let chosen = null;
const keyOf = (p) => JSON.stringify([p.node, p.stream, p.path]);
const ms = (x) => (Number.isFinite(x) ? x.toFixed(1) : '-');

/** The graph's line for a node, short enough for its box, and in full:
 *  what browsers see of its streams (p50s). */
export function nodeLatency(node) {
  const mine = paths.filter((p) => p.node === node);
  if (!mine.length) return { short: '', full: '' };
  const p50s = mine.map((p) => p.p50_ms);
  const [lo, hi] = [Math.min(...p50s), Math.max(...p50s)].map((x) => x.toFixed(0));
  const short = `browser p50 ${lo === hi ? lo : `${lo}–${hi}`} ms`;
  const full = mine.map((p) => `${p.stream}, ${p.view}: p50 ${p.p50_ms.toFixed(1)} ms`).join('\n');
  return { short, full };
}

/** Polls GET /api/latency through `get()` every 2 s, fills the table and
 *  the histogram, then calls `changed()`. */
export function startLatencyView(get, changed) {
  const tick = async () => {
    try {
      paths = (await get()).paths;
      renderPaths();
      changed();
    } catch { /* the next tick tries again */ }
    setTimeout(tick, 2000);
  };
  tick();
}

function cell(text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function renderPaths() {
  const body = document.querySelector('#paths tbody');
  document.querySelector('#paths-empty').hidden = paths.length > 0;
  body.replaceChildren(...paths.map((p) => {
    const tr = document.createElement('tr');
    Object.assign(tr.dataset, { node: p.node, stream: p.stream, path: p.path, p50Ms: p.p50_ms.toFixed(1) });
    tr.tabIndex = 0;
    tr.append(cell(`${p.node}/${p.stream}`), cell(p.view), cell(String(p.frames), 'num'),
      cell(`${ms(p.p50_ms)} / ${ms(p.p95_ms)} / ${ms(p.p99_ms)}`, 'num'));
    const pick = () => { chosen = keyOf(p); renderPaths(); };
    tr.addEventListener('click', pick);
    tr.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') pick(); });
    tr.classList.toggle('selected', keyOf(p) === chosen);
    return tr;
  }));
  renderHistogram(paths.find((p) => keyOf(p) === chosen));
}

/** Bars of the chosen path's ages over the last minute. */
function renderHistogram(p) {
  const g = document.querySelector('#latency-hist');
  const caption = document.querySelector('#latency-hist-caption');
  g.replaceChildren();
  g.toggleAttribute('hidden', !p);
  if (!p) { caption.textContent = paths.length ? 'Choose a path for its histogram.' : ''; return; }
  caption.textContent = `${p.node}/${p.stream}, ${p.view}: ${p.frames} pictures in the last minute, capture to drawn; ` +
    `p50 ${ms(p.p50_ms)} ms, p95 ${ms(p.p95_ms)} ms, p99 ${ms(p.p99_ms)} ms`;
  const W = 600, H = 160, n = p.histogram.length, most = Math.max(1, ...p.histogram);
  const bw = (W - 40) / n;
  g.setAttribute('viewBox', `0 0 ${W} ${H + 20}`);
  g.dataset.frames = String(p.histogram.reduce((a, b) => a + b, 0));
  p.histogram.forEach((count, i) => {
    const h = (count / most) * (H - 10);
    const r = document.createElementNS(SVG, 'rect');
    for (const [k, v] of Object.entries({ x: 30 + i * bw, y: H - h, width: Math.max(bw - 1, 1), height: h, 'data-count': count })) r.setAttribute(k, v);
    const t = document.createElementNS(SVG, 'title');
    t.textContent = `${i * p.bucket_ms}–${(i + 1) * p.bucket_ms} ms: ${count}`;
    r.append(t);
    g.append(r);
  });
  for (const i of [0, Math.floor(n / 2), n]) {
    const t = document.createElementNS(SVG, 'text');
    for (const [k, v] of Object.entries({ x: 30 + i * bw, y: H + 15, 'text-anchor': 'middle' })) t.setAttribute(k, v);
    t.textContent = `${i * p.bucket_ms} ms`;
    g.append(t);
  }
}
