// Recordings (docs/web.md, "Recordings"): every stream an archive sink
// of an online node records, its segments and gaps on a timeline (a gap's
// reason in its tooltip), a range picked by dragging on the timeline,
// clicking a segment or typing its times, played back in the page: the node plays the range as
// a stream (an `archive` source) and the page shows it like a preview, or
// downloaded as one Matroska file the node joins from its segments.
// Operators stop and start the recording (a pause is a `paused` gap).
import { el, enc } from './dom.js';
import { preview } from './players.js';
import { onShow, showView } from './views.js';

const $ = (sel) => document.querySelector(sel);
const SVG = 'http://www.w3.org/2000/svg';
const W = 1000, H = 60;
let ctx = null;         // {api, graph}
let listing = [];       // [{node, archive, from_ms, to_ms}]

function svg(tag, attrs = {}) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

/** A time as a datetime-local value (local time, to the second). */
function localValue(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
const clock = (ms) => new Date(ms).toLocaleTimeString();

function selected() {
  return listing[Number($('#rec-stream').value)] ?? null;
}

/** Asks every online node what it records in the window. */
async function load() {
  if (!ctx.graph()) { setTimeout(load, 300); return; }
  const span = Number($('#rec-window').value);
  const to = Date.now() + 1000, from = to - span;
  const keep = selected();
  const nodes = (ctx.graph()?.nodes ?? []).filter((n) => n.online);
  const answers = await Promise.all(nodes.map((n) => ctx.api('GET', `/api/nodes/${enc(n.name)}/archives?from_ms=${from}&to_ms=${to}`)
    .then((r) => r.archives.map((a) => ({ node: n.name, archive: a, from_ms: from, to_ms: to })), () => [])));
  listing = answers.flat();
  $('#rec-stream').replaceChildren(...listing.map((l, i) => el('option', { value: i, text: `${l.node} / ${l.archive.stream} (${l.archive.codec || 'nothing yet'}, ${l.archive.state})` })));
  const again = keep ? listing.findIndex((l) => l.node === keep.node && l.archive.stream === keep.archive.stream) : -1;
  if (again >= 0) $('#rec-stream').value = String(again);
  $('#rec-empty').hidden = listing.length > 0;
  draw();
}

/** The operators' button: stop a recording, or start a paused one. */
function showToggle() {
  const l = selected(), b = $('#rec-toggle');
  b.hidden = !l || !ctx.canOperate();
  if (!l) return;
  const paused = l.archive.state === 'paused';
  b.textContent = paused ? 'Start recording' : 'Stop recording';
  b.dataset.recording = String(!paused);
}

async function toggle() {
  const l = selected();
  if (!l) return;
  const recording = l.archive.state === 'paused';
  $('#rec-error').textContent = '';
  $('#rec-toggle').disabled = true;
  try {
    await ctx.api('POST', `/api/nodes/${enc(l.node)}/archives/${enc(l.archive.stream)}/recording`, { recording });
    // The sink takes it within a moment; read the state it reports.
    for (let i = 0; i < 20; i++) {
      await new Promise((ok) => setTimeout(ok, 150));
      await load();
      if ((selected()?.archive.state === 'paused') !== recording) break;
    }
  } catch (e) {
    $('#rec-error').textContent = e.message;
  }
  $('#rec-toggle').disabled = false;
}

function draw() {
  showToggle();
  const l = selected();
  const t = $('#rec-timeline');
  t.replaceChildren();
  t.setAttribute('viewBox', `0 0 ${W} ${H + 16}`);
  if (!l) { $('#rec-summary').textContent = ''; return; }
  const x = (ms) => Math.max(0, Math.min(W, ((ms - l.from_ms) / (l.to_ms - l.from_ms)) * W));
  t.append(svg('rect', { class: 'rec-bg', x: 0, y: 0, width: W, height: H }));
  for (const s of l.archive.segments) {
    const what = `${clock(s.start_ms)} – ${clock(s.end_ms)}: ${s.frames} frames, ${(s.bytes / 1e6).toFixed(1)} MB, ${s.state}`;
    // Tab reaches each segment; Enter or Space picks it as the range.
    const r = svg('rect', { class: `rec-seg seg-${s.state}`, x: x(s.start_ms), y: 8, width: Math.max(1, x(s.end_ms) - x(s.start_ms)), height: H - 16, 'data-start': s.start_ms, 'data-end': s.end_ms,
      tabindex: 0, role: 'button', 'aria-label': `segment ${what}: Enter picks it as the range` });
    const title = svg('title');
    title.textContent = what;
    r.append(title);
    r.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); setRange(s.start_ms, s.end_ms); }
    });
    t.append(r);
  }
  for (const g of l.archive.gaps) {
    const end = g.end_ms ?? Date.now();
    const what = `gap ${clock(g.start_ms)} – ${g.end_ms ? clock(g.end_ms) : 'now'}: ${g.reason}${g.frames ? `, ${g.frames} frames` : ''}${g.detail ? ` (${g.detail})` : ''}`;
    // Reached by Tab too, so the keyboard hears the gaps and their reasons.
    const r = svg('rect', { class: 'rec-gap', x: x(g.start_ms), y: 2, width: Math.max(2, x(end) - x(g.start_ms)), height: H - 4, 'data-reason': g.reason,
      tabindex: 0, role: 'img', 'aria-label': what });
    const title = svg('title');
    title.textContent = what;
    r.append(title);
    t.append(r);
  }
  for (let i = 0; i <= 4; i++) {
    const ms = l.from_ms + ((l.to_ms - l.from_ms) * i) / 4;
    const label = svg('text', { x: x(ms), y: H + 12, 'text-anchor': ['start', 'middle', 'middle', 'middle', 'end'][i] });
    label.textContent = clock(ms);
    t.append(label);
  }
  t.append(svg('rect', { id: 'rec-selection', x: 0, y: 0, width: 0, height: H }));
  const closed = l.archive.segments.filter((s) => s.state === 'closed' || s.state === 'recovered');
  const total = closed.reduce((a, s) => a + (s.end_ms - s.start_ms), 0);
  const n = (k, what) => `${k} ${what}${k === 1 ? '' : 's'}`;
  $('#rec-summary').textContent = `${n(l.archive.segments.length, 'segment')} (${(total / 1000).toFixed(0)} s finished), ${n(l.archive.gaps.length, 'gap')}${l.archive.truncated ? ' (more than listed: pick a shorter window)' : ''} · ${l.archive.dir}`;
  showSelection();
}

function setRange(from, to) {
  $('#rec-from').value = localValue(from);
  $('#rec-to').value = localValue(Math.max(to, from + 1000));
  showSelection();
}

function range() {
  return [new Date($('#rec-from').value).getTime(), new Date($('#rec-to').value).getTime()];
}

function showSelection() {
  const l = selected(), r = $('#rec-selection'), a = $('#rec-download');
  const [from, to] = range();
  const ok = l && Number.isFinite(from) && Number.isFinite(to) && to > from;
  a.hidden = !ok;
  if (ok) {
    a.href = `/api/nodes/${enc(l.node)}/archives/${enc(l.archive.stream)}/export?from_ms=${Math.round(from)}&to_ms=${Math.round(to)}`;
    a.title = 'the range as one Matroska file, nothing re-encoded';
  }
  if (!ok || !r) return;
  const x = (ms) => Math.max(0, Math.min(W, ((ms - l.from_ms) / (l.to_ms - l.from_ms)) * W));
  r.setAttribute('x', x(from));
  r.setAttribute('width', Math.max(0, x(to) - x(from)));
}

/** Dragging across the timeline picks a range. */
function bindDrag() {
  const t = $('#rec-timeline');
  // From the page's pixels to the drawing's units (it keeps its aspect), to a time.
  const at = (ev) => {
    const l = selected();
    const pt = t.createSVGPoint();
    pt.x = ev.clientX; pt.y = ev.clientY;
    const x = pt.matrixTransform(t.getScreenCTM().inverse()).x;
    return l.from_ms + (Math.max(0, Math.min(W, x)) / W) * (l.to_ms - l.from_ms);
  };
  let start = null;
  t.addEventListener('pointerdown', (ev) => { if (selected()) { start = at(ev); t.setPointerCapture(ev.pointerId); } });
  t.addEventListener('pointermove', (ev) => { if (start !== null) { const now = at(ev); setRange(Math.min(start, now), Math.max(start, now)); } });
  t.addEventListener('pointerup', (ev) => {
    if (start === null) return;
    const end = at(ev);
    if (Math.abs(end - start) > 500) setRange(Math.min(start, end), Math.max(start, end));
    else {
      // A click: the segment there (within 3 pixels), as the range.
      const l = selected(), slack = (3 * (l.to_ms - l.from_ms)) / W;
      const seg = l.archive.segments.find((x) => x.start_ms - slack <= end && end <= x.end_ms + slack);
      if (seg) setRange(seg.start_ms, seg.end_ms);
    }
    start = null;
  });
}

async function play(ev) {
  ev.preventDefault();
  const l = selected();
  const [from, to] = range();
  $('#rec-error').textContent = '';
  if (!l) { $('#rec-error').textContent = 'no recording picked'; return; }
  if (!(to > from)) { $('#rec-error').textContent = 'the range must end after it starts'; return; }
  try {
    const r = await ctx.api('POST', `/api/nodes/${enc(l.node)}/archives/${enc(l.archive.stream)}/play`, { from_ms: Math.round(from), to_ms: Math.round(to) });
    const caption = el('p', { class: 'hint rec-caption', text: `${l.node} / ${l.archive.stream}: ${new Date(from).toLocaleString()} – ${clock(to)}, playing as ${r.name} (it plays again at its end)` });
    // The stream shows in the graph once the node reports it: then it plays.
    for (let i = 0; i < 50 && !ctx.graph()?.nodes.some((n) => n.name === r.node && n.streams.some((x) => x.name === r.name)); i++) {
      await new Promise((ok) => setTimeout(ok, 100));
    }
    const stop = () => ctx.api('DELETE', `/api/nodes/${enc(r.node)}/playbacks/${enc(r.name)}`).catch(() => {});
    const p = preview(r.node, r.name, { container: $('#rec-players'), measure: false, onClose: () => { caption.remove(); stop(); } });
    p.box.dataset.recording = l.archive.stream;
    p.box.before(caption);
  } catch (e) {
    $('#rec-error').textContent = e.message;
  }
}

/** Wires the view: `api(method, path, body)`, `graph()`. */
export function startRecordings(api, graph, canOperate) {
  ctx = { api, graph, canOperate };
  $('#rec-toggle').addEventListener('click', toggle);
  onShow('recordings', load);
  $('#rec-refresh').addEventListener('click', load);
  $('#rec-window').addEventListener('change', load);
  $('#rec-stream').addEventListener('change', draw);
  $('#rec-from').addEventListener('change', showSelection);
  $('#rec-to').addEventListener('change', showSelection);
  $('#rec-range').addEventListener('submit', play);
  bindDrag();
  if (location.hash === '#recordings') showView('recordings', true);
}
