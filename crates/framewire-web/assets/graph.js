// The graph as a workspace (docs/web.md, "The graph"): every node with its
// streams, each stream with a thumbnail and a port; an operator drags from
// a stream's port to a node to wire it (or presses Enter on the port), and
// clicks an edge to change or remove it, in a popover. Viewers see the same
// drawing and popovers without the controls. Positions: graphlayout.js.
import { el, enc } from './dom.js';
import { layout, rowY, fitScale, placeLabels, W, HEAD, ROW, LABEL_H } from './graphlayout.js';
import { updateWanted } from './wanted.js';

const SVG = 'http://www.w3.org/2000/svg';
const $ = (sel) => document.querySelector(sel);
/** Thumbnails are fetched again this often (the server makes each once per 2 s). */
const THUMB_EVERY_MS = 5000;

let ctx = null;       // {api, csrf, canOperate, onNode, onEdge, afterDraw}
let current = null;   // the graph drawn
let shape = '';

function svg(tag, attrs = {}) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}
function fmt(x, digits = 1) { return Number.isFinite(x) ? x.toFixed(digits) : '-'; }
function ms(us) { return us ? `${(us / 1000).toFixed(1)} ms` : '-'; }
export function edgeLabel(e) {
  return edgeLines(e).join(' · ');
}
function edgeLines(e) {
  return [`${fmt(e.fps)} fps · ${fmt(e.mbit_s)} Mbit/s`, `${e.drops} drops · ${ms(e.latency_p50_us)}`];
}
/** An edge's label (two lines) and tooltip set to its figures. */
function setLabel(grp, e) {
  const lines = edgeLines(e);
  const t = grp.querySelector('text');
  if (t) t.querySelectorAll('tspan').forEach((s, i) => { s.textContent = lines[i]; });
  grp.querySelector('title').textContent = `${e.upstream}/${e.stream} → ${e.downstream}/${e.local_name}: ${lines.join(' · ')}`;
}

/** Sets the callbacks once: `api(method, path, body)`, `csrf()`,
 *  `canOperate()`, `onNode(name)`, `onEdge(id)`, `afterDraw()`. */
export function initGraph(callbacks) {
  ctx = callbacks;
  setInterval(refreshThumbs, THUMB_EVERY_MS);
  document.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') closePop(); });
  let resize = null;
  window.addEventListener('resize', () => {
    clearTimeout(resize);
    resize = setTimeout(() => { if (current) { shape = ''; drawGraph(current, lastSelected); } }, 150);
  });
}

function thumbUrl(node, stream) {
  return `/thumb/${enc(node)}/${enc(stream)}.jpg?t=${Math.floor(Date.now() / THUMB_EVERY_MS)}`;
}

function refreshThumbs() {
  if (document.hidden || $('#app').hidden) return;
  for (const img of document.querySelectorAll('#graph image.thumb')) {
    img.setAttribute('href', thumbUrl(img.dataset.node, img.dataset.stream));
  }
}

/**
 * Draws `graph`. The SVG is rebuilt only when its shape changes (nodes,
 * streams, edges, states); otherwise only the labels change, so a click
 * never lands on a detached element.
 */
let lastSelected = null;
export function drawGraph(graph, selectedNode, force = false) {
  current = graph;
  lastSelected = selectedNode;
  const g = $('#graph');
  const next = JSON.stringify([selectedNode, ctx.canOperate(), graph.nodes.map((n) => [n.name, n.online, n.streams.map((s) => s.name)]),
    graph.edges.map((e) => [e.id, e.upstream, e.stream, e.downstream, e.local_name, e.state])]);
  if (!force && next === shape) {
    for (const e of graph.edges) {
      const grp = g.querySelector(`g.edge[data-edge-id="${CSS.escape(e.id)}"]`);
      if (grp) setLabel(grp, e);
    }
    ctx.afterDraw();
    return;
  }
  shape = next;
  g.replaceChildren();
  const marker = svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, orient: 'auto-start-reverse' });
  marker.append(svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: '#4fa3ff' }));
  const defs = svg('defs');
  defs.append(marker);
  g.append(defs);
  const { pos, bands, width, height } = layout(graph);
  for (const b of bands) {
    const band = svg('g', { class: 'site-band', 'data-site': b.site });
    band.append(svg('rect', { x: 4, y: b.y + 2, width: width - 8, height: b.h - 4, rx: 8 }));
    const t = svg('text', { x: 16, y: b.y + 20 });
    t.textContent = b.site === 0 ? 'this site' : `site ${b.site}`;
    band.append(t);
    g.append(band);
  }
  const byName = new Map(graph.nodes.map((n) => [n.name, n]));
  const row = (node, stream) => (byName.get(node)?.streams ?? []).findIndex((s) => s.name === stream);
  const drawn = graph.edges.filter((e) => pos.get(e.upstream) && pos.get(e.downstream)).map((e) => {
    const a = pos.get(e.upstream), b = pos.get(e.downstream);
    return { e, x1: a.x + W, y1: rowY(a, row(e.upstream, e.stream)), x2: b.x, y2: rowY(b, row(e.downstream, e.local_name)) };
  });
  const labels = placeLabels(drawn, [...pos.values()]);
  for (const [i, { e, x1, y1, x2, y2 }] of drawn.entries()) {
    const grp = svg('g', { class: `edge state-${e.state}`, 'data-edge-id': e.id, tabindex: 0, role: 'button', 'aria-label': `edge ${e.id}: ${e.upstream}/${e.stream} to ${e.downstream}/${e.local_name}, ${e.state}` });
    const mx = (x1 + x2) / 2;
    const d = `M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2} ${y2}`;
    grp.append(svg('title'), svg('path', { d, class: 'hit' }), svg('path', { d, class: 'line' }));
    const at = labels[i];
    if (at) {
      // Two lines around the label's centre (11 px text, 13 px apart).
      const t = svg('text', { x: at.x, y: at.y - LABEL_H / 2 + 11, 'text-anchor': 'middle' });
      t.append(svg('tspan', { x: at.x }), svg('tspan', { x: at.x, dy: 13 }));
      grp.append(t);
    }
    setLabel(grp, e);
    const open = (ev) => { ctx.onEdge(e.id); edgePop(e.id, ev); };
    grp.addEventListener('click', open);
    grp.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); open(ev); } });
    g.append(grp);
  }
  for (const n of graph.nodes) g.append(drawNode(n, pos.get(n.name), n.name === selectedNode));
  g.setAttribute('viewBox', `0 0 ${width} ${height}`);
  const scale = fitScale(width, $('#graph-wrap').clientWidth);
  g.setAttribute('width', Math.round(width * scale));
  g.setAttribute('height', Math.round(height * scale));
  ctx.afterDraw();
}

function drawNode(n, p, selected) {
  const grp = svg('g', { class: `node${n.online ? '' : ' offline'}${selected ? ' selected' : ''}`, transform: `translate(${p.x},${p.y})`, 'data-node': n.name, tabindex: 0, role: 'button', 'aria-label': `node ${n.name}${n.online ? '' : ', offline'}` });
  grp.append(svg('rect', { width: W, height: p.h }));
  const t1 = svg('text', { x: 10, y: 20 }); t1.textContent = n.name;
  const t2 = svg('text', { x: 10, y: 36, class: 'sub' });
  t2.textContent = `${n.streams.length} stream${n.streams.length === 1 ? '' : 's'}${n.online ? '' : ' · offline'}`;
  // Capture to drawn in browsers (the latency view), p50.
  const t3 = svg('text', { x: 10, y: 50, class: 'sub lat' });
  grp.append(t1, t2, t3);
  n.streams.forEach((s, i) => {
    const r = svg('g', { class: 'stream', transform: `translate(0,${HEAD + i * ROW})`, 'data-stream': s.name });
    if (n.online) {
      r.append(svg('image', { class: 'thumb', x: 8, y: 3, width: 60, height: 34, preserveAspectRatio: 'xMidYMid meet', href: thumbUrl(n.name, s.name), 'data-node': n.name, 'data-stream': s.name }));
    }
    const a = svg('text', { x: 74, y: 17 }); a.textContent = s.name;
    const b = svg('text', { x: 74, y: 32, class: 'sub' }); b.textContent = `${s.format} ${s.width}×${s.height}`;
    r.append(a, b);
    if (ctx.canOperate()) r.append(port(n.name, s.name));
    grp.append(r);
  });
  grp.addEventListener('click', () => ctx.onNode(n.name));
  grp.addEventListener('keydown', (ev) => { if (ev.target === grp && ev.key === 'Enter') ctx.onNode(n.name); });
  return grp;
}

// ---- wiring by drag ----------------------------------------------------------

function port(node, stream) {
  const c = svg('circle', { class: 'port', cx: W, cy: ROW / 2, r: 7, tabindex: 0, role: 'button', 'data-node': node, 'data-stream': stream, 'aria-label': `wire ${node}/${stream} to a node: drag to the node, or press Enter` });
  const title = svg('title'); title.textContent = `drag ${stream} to a node to wire it`;
  c.append(title);
  c.addEventListener('click', (ev) => ev.stopPropagation());
  c.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); ev.stopPropagation(); wirePop(node, stream, null, c.getBoundingClientRect()); }
  });
  c.addEventListener('pointerdown', (ev) => startDrag(ev, c, node, stream));
  return c;
}

function toSvg(g, ev) {
  const pt = g.createSVGPoint();
  pt.x = ev.clientX; pt.y = ev.clientY;
  return pt.matrixTransform(g.getScreenCTM().inverse());
}

function startDrag(ev, c, node, stream) {
  ev.preventDefault();
  ev.stopPropagation();
  const g = $('#graph');
  const start = toSvg(g, { clientX: c.getBoundingClientRect().x + 7, clientY: c.getBoundingClientRect().y + 7 });
  const line = svg('path', { class: 'drag' });
  g.append(line);
  c.setPointerCapture(ev.pointerId);
  let over = null;
  const move = (e) => {
    const p = toSvg(g, e);
    line.setAttribute('d', `M ${start.x} ${start.y} L ${p.x} ${p.y}`);
    const target = document.elementFromPoint(e.clientX, e.clientY)?.closest('#graph g.node');
    const name = target && target.dataset.node !== node ? target.dataset.node : null;
    if (over && over !== target) over.classList.remove('drop');
    over = name ? target : null;
    over?.classList.add('drop');
  };
  const up = (e) => {
    c.removeEventListener('pointermove', move);
    c.removeEventListener('pointerup', up);
    c.removeEventListener('pointercancel', up);
    line.remove();
    over?.classList.remove('drop');
    if (e.type === 'pointerup' && over) wirePop(node, stream, over.dataset.node, { x: e.clientX, y: e.clientY });
  };
  c.addEventListener('pointermove', move);
  c.addEventListener('pointerup', up);
  c.addEventListener('pointercancel', up);
}

// ---- popovers ----------------------------------------------------------------

function closePop() { $('#graph-pop').hidden = true; }

function place(at) {
  const pop = $('#graph-pop');
  const wrap = $('#graph-wrap').getBoundingClientRect();
  pop.hidden = false;
  pop.style.left = `${Math.max(0, Math.min(at.x - wrap.x + $('#graph-wrap').scrollLeft, wrap.width - 320))}px`;
  pop.style.top = `${Math.max(0, at.y - wrap.y + $('#graph-wrap').scrollTop + 12)}px`;
  pop.querySelector('input, select, button')?.focus();
}

function field(label, input) { return el('label', {}, label, input); }
function select(id, options, value) {
  const s = el('select', { id }, ...options.map((o) => el('option', { value: o, text: o })));
  if (value !== undefined) s.value = String(value);
  return s;
}
function num(id, value, min, max) { return el('input', { id, type: 'number', min, max, value }); }

/** The popover to wire `node`/`stream` to `to` (picked in it when null). */
function wirePop(node, stream, to, at) {
  const others = current.nodes.map((n) => n.name).filter((n) => n !== node);
  const toSel = select('pop-to', others, to ?? others[0]);
  const error = el('p', { class: 'error', role: 'alert' });
  const form = el('form', { class: 'pop-wire', 'aria-label': `wire ${node}/${stream}` },
    el('h4', { text: `Wire ${node} / ${stream}` }),
    field('To node', toSel),
    field('Serve as', el('input', { id: 'pop-local', placeholder: stream })),
    field('Mode', select('pop-mode', ['low-latency', 'completeness'])),
    field('Max frames', num('pop-max-frames', 0, 0)),
    field('Max bytes', num('pop-max-bytes', 0, 0)),
    field('Drop', select('pop-drop', ['drop-oldest', 'drop-newest'])),
    field('Priority', num('pop-priority', 128, 0, 255)),
    el('div', { class: 'pop-buttons' }, el('button', { type: 'submit', text: 'Wire' }), el('button', { type: 'button', text: 'Cancel', onclick: closePop })),
    error);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    const v = (id) => form.querySelector(`#${id}`).value;
    try {
      await ctx.api('POST', '/api/edges', {
        from: node, stream, to: v('pop-to'), local_name: v('pop-local').trim(), mode: v('pop-mode'),
        max_frames: Number(v('pop-max-frames')) || 0, max_bytes: Number(v('pop-max-bytes')) || 0,
        drop_policy: v('pop-drop'), priority: Number(v('pop-priority')),
      });
      closePop();
    } catch (e) {
      error.textContent = e.message;
    }
  });
  $('#graph-pop').replaceChildren(form);
  place(at);
}

/** The popover of edge `id`: its figures; for an operator and a wanted
 *  edge, its settings to change, and Remove. */
async function edgePop(id, ev) {
  const e = current.edges.find((x) => x.id === id);
  if (!e) return;
  const at = ev.clientX !== undefined && ev.clientX !== 0 ? { x: ev.clientX, y: ev.clientY } : ev.target.getBoundingClientRect();
  const error = el('p', { class: 'error', role: 'alert' });
  const box = el('div', { class: 'pop-edge', 'data-edge-id': id },
    el('h4', { text: `${e.upstream} / ${e.stream} → ${e.downstream} / ${e.local_name}` }),
    el('p', { class: 'hint', text: `${e.mode} · ${e.state}${e.transport ? ` · ${e.transport}` : ''} · priority ${e.priority} · ${edgeLabel(e)}${e.error ? ` · ${e.error}` : ''}` }));
  $('#graph-pop').replaceChildren(box);
  place(at);
  if (!ctx.canOperate() || !e.wanted) {
    box.append(el('p', { class: 'hint', text: e.wanted ? 'Operators change edges.' : 'Not in the wanted graph: a node made it itself.' }),
      el('button', { type: 'button', text: 'Close', onclick: closePop }));
    return;
  }
  const w = await ctx.api('GET', '/api/wanted');
  const want = (w.edge ?? []).find((x) => `${x.to}/${x.local_name || x.stream}` === id);
  if (!want) { box.append(el('p', { class: 'hint', text: 'No longer wanted.' })); return; }
  const form = el('form', { class: 'pop-change' },
    field('Mode', select('pop-mode', ['low-latency', 'completeness'], want.mode ?? 'low-latency')),
    field('Max frames', num('pop-max-frames', want.max_frames ?? 0, 0)),
    field('Max bytes', num('pop-max-bytes', want.max_bytes ?? 0, 0)),
    field('Drop', select('pop-drop', ['drop-oldest', 'drop-newest'], want.drop_policy ?? 'drop-oldest')),
    field('Priority', num('pop-priority', want.priority ?? 128, 0, 255)),
    el('div', { class: 'pop-buttons' },
      el('button', { type: 'submit', text: 'Apply' }),
      el('button', { type: 'button', class: 'danger pop-remove', text: 'Remove', onclick: () => remove() }),
      el('button', { type: 'button', text: 'Cancel', onclick: closePop })),
    error);
  const remove = async () => {
    try { await ctx.api('DELETE', `/api/edges/${enc(id)}`); closePop(); } catch (err) { error.textContent = err.message; }
  };
  form.addEventListener('submit', async (sub) => {
    sub.preventDefault();
    const v = (f) => form.querySelector(`#${f}`).value;
    try {
      await updateWanted((wg) => {
        const x = (wg.edge ?? []).find((y) => `${y.to}/${y.local_name || y.stream}` === id);
        if (!x) throw new Error('the edge is no longer wanted');
        Object.assign(x, { mode: v('pop-mode'), max_frames: Number(v('pop-max-frames')) || 0, max_bytes: Number(v('pop-max-bytes')) || 0, drop_policy: v('pop-drop'), priority: Number(v('pop-priority')) });
        return true;
      }, ctx.csrf());
      closePop();
    } catch (err) {
      error.textContent = err.message;
    }
  });
  box.append(form);
}
