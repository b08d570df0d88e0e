// The controller's browser UI: no framework, no build step. It reads the
// graph from /ws/state, wires and unwires through /api/edges, shows
// previews decoded from framewire wire messages (wire.js) and the node
// panel with V4L2 controls.
import { startReporting, startLatencyView, nodeLatency } from './latency.js';
import { preview, live } from './players.js';
import { el, enc, fill } from './dom.js';
import { updateWanted } from './wanted.js';
import { initGraph, drawGraph } from './graph.js';
import { startMultiview, multiviewGraphChanged } from './multiview.js';
import { loadAdmin } from './admin.js';
import { bindViews } from './views.js';
import { startRecordings } from './recordings.js';
import { loadSources } from './sources.js';
import { startHostView } from './host.js';
import { showAlerts, bindAlertsBadge } from './alerts.js';

const $ = (sel) => document.querySelector(sel);
const SVG = 'http://www.w3.org/2000/svg';
let session = null;
let graph = null;
let selectedNode = null;
let selectedEdge = null;
const previews = new Map();

function svg(tag, attrs = {}) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}
const canOperate = () => session && (session.role === 'operator' || session.role === 'admin');

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && session?.csrf) headers['x-csrf-token'] = session.csrf;
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { error: text }; }
  if (!r.ok) {
    const err = new Error(data?.error || `${r.status} ${r.statusText}`);
    err.status = r.status;
    throw err;
  }
  return data;
}

// ---- session ------------------------------------------------------------

async function boot() {
  try {
    session = await api('GET', '/api/session');
    start();
  } catch (e) {
    if (e.status === 401) showLogin();
    else $('#login-error').textContent = e.message;
  }
}

function showLogin() {
  $('#login').hidden = false;
  $('#app').hidden = true;
  $('#login-name').focus();
}

$('#login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('#login-error').textContent = '';
  try {
    session = await api('POST', '/api/login', { name: $('#login-name').value, password: $('#login-password').value });
    $('#login-password').value = '';
    start();
  } catch (e) {
    $('#login-error').textContent = e.message;
  }
});

$('#logout').addEventListener('click', async () => {
  try { await api('POST', '/api/logout'); } catch { /* the session may be gone already */ }
  location.reload();
});

function start() {
  $('#login').hidden = true;
  $('#app').hidden = false;
  $('#who').textContent = session.open ? 'open mode (loopback, no users)' : `${session.user} (${session.role})`;
  $('#logout').hidden = session.open;
  document.body.className = session.role + (session.open ? ' open' : '');
  for (const e of document.querySelectorAll('.operator-only input, .operator-only select, .operator-only button')) e.disabled = !canOperate();
  connectState();
  if (session.role === 'admin' && !session.open) loadAdmin(api, session.user);
  if (!reporting) {
    reporting = true;
    startReporting((body) => api('POST', '/api/latency', body));
    startLatencyView(() => api('GET', '/api/latency'), showNodeLatency);
    startHostView(() => api('GET', '/api/host'), el);
    bindAlertsBadge();
    bindViews();
    startRecordings(api, () => graph, canOperate);
    startMultiview(() => graph, () => session?.csrf);
    initGraph({
      api, csrf: () => session?.csrf, canOperate, afterDraw: showNodeLatency,
      onNode: (name) => selectNode(name), onEdge: (id) => { selectedEdge = id; renderEdges(); },
    });
  }
}

let reporting = false;

/** Each node's line of what browsers see of it, in the graph (in full in
 *  its tooltip; the line stays inside the node's box). */
function showNodeLatency() {
  for (const t of document.querySelectorAll('#graph g.node text.lat')) {
    const { short, full } = nodeLatency(t.parentNode.dataset.node);
    if (t.dataset.full === full) continue;
    t.dataset.full = full;
    t.textContent = short;
    if (full) {
      const title = svg('title');
      title.textContent = full;
      t.append(title);
    }
  }
}

// ---- live graph -----------------------------------------------------------

function connectState() {
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/state`);
  ws.onopen = () => { $('#conn').textContent = 'live'; $('#conn').className = 'conn on'; };
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.type === 'graph') { graph = m.graph; render(); }
    else if (m.type === 'alerts') showAlerts(m, canOperate(), (id) => api('POST', `/api/alerts/${id}/ack`), el);
  };
  ws.onclose = () => {
    $('#conn').textContent = 'offline'; $('#conn').className = 'conn off';
    setTimeout(connectState, 1000);
  };
}

function fmt(x, digits = 1) { return Number.isFinite(x) ? x.toFixed(digits) : '-'; }
function ms(us) { return us ? `${(us / 1000).toFixed(1)} ms` : '-'; }

function render() {
  $('#graph-version').textContent = `v${graph.version}`;
  drawGraph(graph, selectedNode);
  renderEdges();
  renderWireForm();
  multiviewGraphChanged();
  if (selectedNode) {
    const n = graph.nodes.find((x) => x.name === selectedNode);
    if (n) renderNodeHead(n);
    else {
      $('#node-panel').replaceChildren(el('p', { class: 'hint', text: `${selectedNode} left the graph. Select a node in the graph.` }));
      selectedNode = null;
    }
  }
}

function setText(cell, text) {
  if (cell.textContent !== text) cell.textContent = text;
}

// Rows are kept per edge id and only their cells' text changes, so a
// button is never replaced under the pointer.
function renderEdges() {
  const body = $('#edges tbody');
  const rows = new Map([...body.children].map((tr) => [tr.dataset.edgeId, tr]));
  const seen = new Set();
  for (const e of graph.edges) {
    seen.add(e.id);
    let tr = rows.get(e.id);
    if (!tr) {
      tr = el('tr', { 'data-edge-id': e.id });
      for (let i = 0; i < 11; i++) tr.append(el('td'));
      for (const i of [4, 6, 7, 8, 9]) tr.children[i].className = 'num';
      body.append(tr);
    }
    const c = tr.children;
    setText(c[0], e.id); setText(c[1], `${e.upstream}/${e.stream}`); setText(c[2], `${e.downstream}/${e.local_name}`);
    setText(c[3], (e.transport ? `${e.mode} · ${e.transport}` : e.mode) + (e.policy ? ' · adjusted' : '')); setText(c[4], String(e.priority)); setText(c[5], e.state);
    c[3].title = e.policy ?? '';
    setText(c[6], fmt(e.fps)); setText(c[7], fmt(e.mbit_s, 2));
    setText(c[8], e.alert ? `${e.drops} ⚠ ${Math.round((e.drop_share ?? 0) * 100)} %` : String(e.drops));
    c[8].title = [e.alert, e.policy].filter(Boolean).join('; ');
    tr.classList.toggle('alert', Boolean(e.alert));
    setText(c[9], `${ms(e.latency_p50_us)} / ${ms(e.latency_p99_us)}`);
    const wantButton = e.wanted && canOperate();
    const has = c[10].querySelector('button.unwire');
    if (wantButton && !has) c[10].append(el('button', { class: 'unwire', 'data-edge-id': e.id, text: 'Unwire', onclick: () => unwireEdge(e.id) }));
    if (!wantButton && has) has.remove();
    tr.classList.toggle('selected', e.id === selectedEdge);
  }
  for (const [id, tr] of rows) if (!seen.has(id)) tr.remove();
}

function renderWireForm() {
  const from = $('#wire-from'), to = $('#wire-to');
  const keepFrom = from.value, keepTo = to.value;
  from.replaceChildren(...graph.nodes.flatMap((n) => n.streams.map((s) => el('option', { value: `${n.name}\u0000${s.name}`, text: `${n.name} / ${s.name}` }))));
  to.replaceChildren(...graph.nodes.map((n) => el('option', { value: n.name, text: n.name })));
  if ([...from.options].some((o) => o.value === keepFrom)) from.value = keepFrom;
  if ([...to.options].some((o) => o.value === keepTo)) to.value = keepTo;
}

$('#wire-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('#wire-error').textContent = '';
  const [fromNode, stream] = $('#wire-from').value.split('\u0000');
  const edge = {
    from: fromNode, stream, to: $('#wire-to').value, local_name: $('#wire-local').value.trim(),
    mode: $('#wire-mode').value, max_frames: Number($('#wire-max-frames').value) || 0,
    max_bytes: Number($('#wire-max-bytes').value) || 0, drop_policy: $('#wire-drop').value,
    priority: Number($('#wire-priority').value), on_alert: $('#wire-on-alert').value,
  };
  try {
    const r = await api('POST', '/api/edges', edge);
    selectedEdge = r.id;
    $('#wire-error').textContent = '';
  } catch (e) {
    $('#wire-error').textContent = e.message;
  }
});

async function unwireEdge(id) {
  // The id is one path segment, '/' included (%2F): whatever a name holds,
  // the request can only ever address this edge.
  try { await api('DELETE', `/api/edges/${enc(id)}`); } catch (e) { $('#wire-error').textContent = e.message; }
}

// ---- node panel ------------------------------------------------------------

function renderNodeHead(n) {
  const head = $('#node-head');
  if (!head) return;
  // Rebuilt only when something shown changes (keeps the buttons under the pointer).
  const shape = JSON.stringify([n.name, n.addr, n.online, n.error, n.functions,
    n.streams.map((s) => [s.name, s.format, s.width, s.height, fmt(s.fps), s.state, s.outputs.length])]);
  if (head.dataset.shape === shape) return;
  head.dataset.shape = shape;
  fill(head,
    el('h2', { text: n.name }),
    el('dl', {},
      el('dt', { text: 'address' }), el('dd', { text: n.addr }),
      el('dt', { text: 'state' }), el('dd', { class: 'node-state', text: n.online ? `online${n.error ? ` (last error: ${n.error})` : ''}` : `offline${n.error ? `: ${n.error}` : ''}` }),
      el('dt', { text: 'functions' }), el('dd', { text: functions(n.functions) }),
    ),
    el('h3', { text: 'Streams' }),
    el('ul', {}, ...n.streams.map((s) => el('li', {},
      `${s.name}: ${s.format} ${s.width}×${s.height} @ ${fmt(s.fps)} fps, ${s.state}, ${s.outputs.length} output${s.outputs.length === 1 ? '' : 's'} `,
      el('button', { class: 'preview-btn', 'data-stream': s.name, text: 'Preview', onclick: () => openPreview(n.name, s.name) }),
      ' ',
      el('button', { class: 'live-btn', 'data-stream': s.name, text: 'Live', title: 'WebRTC, lowest latency', onclick: () => openLive(n.name, s.name) }),
      ' ',
      el('a', { class: 'snapshot-link', 'data-stream': s.name, href: `/snapshot/${enc(n.name)}/${enc(s.name)}.jpg`, target: '_blank', text: 'Snapshot' }),
    ))),
    session?.role === 'admin' && n.online
      ? el('p', {}, el('button', { id: 'shutdown-btn', class: 'danger', text: 'Shut down node', onclick: () => shutdownNode(n.name) }),
        el('span', { id: 'shutdown-result', class: 'hint' }))
      : null,
    canOperate() && !n.online
      ? el('p', {}, el('button', { id: 'forget-btn', text: 'Forget this node', title: 'it leaves the graph; its wanted edges stay', onclick: () => forgetNode(n.name) }),
        el('span', { id: 'forget-result', class: 'hint' }))
      : null,
  );
}

async function forgetNode(name) {
  const out = $('#forget-result');
  try {
    await api('DELETE', `/api/nodes/${enc(name)}`);
    if (out) out.textContent = ' forgotten';
  } catch (e) {
    if (out) out.textContent = ` ${e.message}`;
  }
}

async function shutdownNode(name) {
  if (!window.confirm(`Shut down ${name}? Its sinks finish and it leaves the graph; it must be started again on its machine.`)) return;
  const out = $('#shutdown-result');
  try {
    await api('POST', `/api/nodes/${enc(name)}/shutdown`);
    if (out) out.textContent = ' shutting down…';
  } catch (e) {
    if (out) out.textContent = ` ${e.message}`;
  }
}

function functions(f) {
  return ['source', 'relay', 'sink', 'controller'].filter((_, i) => f & (1 << i)).join(', ') || '-';
}

const LABELS = { uptime_ms: 'uptime', tcp_port: 'TCP port', site_id: 'site', pid: 'process id' };

/** A DESCRIBE field in words: lists joined, the uptime in units. */
function describeValue(k, v) {
  if (Array.isArray(v)) return v.length ? v.join(', ') : 'none';
  if (k === 'uptime_ms') {
    const s = Math.floor(v / 1000), d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    return d ? `${d} d ${h} h` : h ? `${h} h ${m} min` : m ? `${m} min ${s % 60} s` : `${s} s`;
  }
  return String(v);
}

async function selectNode(name) {
  selectedNode = name;
  drawGraph(graph, selectedNode, true);
  const panel = $('#node-panel');
  panel.replaceChildren(el('div', { id: 'node-head' }), el('div', { id: 'node-sources' }), el('div', { id: 'node-describe' }), el('div', { id: 'node-v4l2' }),
    el('div', { id: 'node-monitors' }, el('button', { id: 'monitors-btn', text: 'Monitors', onclick: () => loadMonitors(name) })));
  const n = graph.nodes.find((x) => x.name === name);
  if (n) renderNodeHead(n);
  if (n?.online) loadSources($('#node-sources'), name, { graph, el, api, enc, canOperate, wantSource, unwantSource });
  try {
    const d = await api('GET', `/api/nodes/${enc(name)}`);
    $('#node-describe').replaceChildren(el('h3', { text: 'DESCRIBE' }), el('dl', {},
      ...Object.entries(d).flatMap(([k, v]) => [el('dt', { text: LABELS[k] ?? k.replace(/_/g, ' ') }), el('dd', { text: describeValue(k, v) })])));
  } catch (e) {
    $('#node-describe').replaceChildren(el('p', { class: 'error', text: `DESCRIBE: ${e.message}` }));
  }
  if (n?.v4l2) loadControls(name);
}

async function loadMonitors(node) {
  const box = $('#node-monitors');
  try {
    const r = await api('GET', `/api/nodes/${enc(node)}/monitors`);
    box.replaceChildren(el('h3', { text: 'Monitors' }), r.monitors.length === 0 ? el('p', { class: 'hint', text: 'no monitors' }) : el('table', {},
      el('thead', {}, el('tr', {}, ...['name', 'position', 'size', 'mm', 'Hz', '', ''].map((h) => el('th', { text: h })))),
      el('tbody', {}, ...r.monitors.map((m) => el('tr', { 'data-monitor': m.name },
        el('td', { text: m.name }), el('td', { text: `${m.x},${m.y}` }), el('td', { text: `${m.width}×${m.height}` }),
        el('td', { text: `${m.width_mm}×${m.height_mm}` }), el('td', { text: m.refresh_hz.toFixed(2) }),
        el('td', { text: m.primary ? 'primary' : '' }),
        el('td', {}, canOperate() ? el('button', { class: 'grab-btn', text: 'Grab', title: 'serve this monitor as a stream of the node',
          onclick: () => wantSource(node, { kind: 'x11', name: streamName('screen', m.name), monitor: m.name }) }) : null))))),
      el('p', { id: 'source-result', class: 'hint' }));
  } catch (e) {
    box.replaceChildren(el('p', { class: 'hint', text: `monitors: ${e.message}` }));
  }
}

async function loadControls(node) {
  const box = $('#node-v4l2');
  try {
    const r = await api('GET', `/api/nodes/${enc(node)}/v4l2`);
    box.replaceChildren(el('h3', { text: 'Camera controls' }), el('p', { id: 'camera-result', class: 'hint' }),
      ...r.devices.map((d) => el('div', { class: 'device', 'data-device': d.path }, el('h4', { text: `${d.card} (${d.path}) ` },
        canOperate() ? el('button', { class: 'open-camera-btn', text: 'Open', title: 'serve this camera as a stream of the node',
          onclick: () => wantSource(node, { kind: 'v4l2', name: streamName('cam', d.path.split('/').pop()), device: d.path }, '#camera-result') }) : null),
        ...d.controls.map((c) => control(node, d.path, c)))));
  } catch (e) {
    box.replaceChildren(el('p', { class: 'error', text: `controls: ${e.message}` }));
  }
}

function control(node, device, c) {
  const locked = !canOperate() || c.read_only || c.inactive;
  const out = el('output', { text: c.value ?? '' });
  const set = async (value) => {
    try {
      const r = await api('POST', `/api/nodes/${enc(node)}/v4l2`, { device, values: [{ id: c.id, value }] });
      const v = r.values.find((x) => x.id === c.id);
      if (v) out.textContent = String(v.value);
    } catch (e) { out.textContent = '!'; out.title = e.message; }
  };
  let input;
  switch (c.widget) {
    case 'slider':
      input = el('input', { type: 'range', min: c.min, max: c.max, step: c.step || 1, value: c.value ?? c.default, disabled: locked });
      input.addEventListener('input', () => { out.textContent = input.value; });
      input.addEventListener('change', () => set(Number(input.value)));
      break;
    case 'toggle':
      input = el('input', { type: 'checkbox', disabled: locked });
      input.checked = Boolean(c.value);
      input.addEventListener('change', () => set(input.checked ? 1 : 0));
      break;
    case 'menu':
      input = el('select', { disabled: locked }, ...c.menu.map((m) => el('option', { value: m.index, text: c.type === 'integer-menu' ? String(m.value) : m.name })));
      input.value = String(c.value ?? c.default);
      input.addEventListener('change', () => set(Number(input.value)));
      break;
    case 'button':
      input = el('button', { text: c.name, disabled: locked, onclick: () => set(1) });
      break;
    default:
      input = el('span', { text: String(c.value ?? '') });
  }
  return el('div', { class: `ctl ctl-${c.widget}`, 'data-control': c.name }, el('label', { text: c.name }), input, out);
}

// ---- wanted sources: a monitor grabbed, a camera opened ----------------------

/** A stream name from a prefix and a device's or monitor's name. */
function streamName(prefix, what) {
  return `${prefix}-${String(what).toLowerCase().replace(/[^a-z0-9_.-]+/g, '-')}`;
}

/**
 * Adds a source to the wanted graph (replacing one of that name on that
 * node): read it with its version, write it back with If-Match, read again
 * if someone changed it meanwhile. The controller starts it on the node.
 */
async function wantSource(node, table, outSel = '#source-result') {
  const out = typeof outSel === 'string' ? $(outSel) : outSel;
  const say = (t) => { if (out) out.textContent = t; };
  say(`adding ${table.name}…`);
  try {
    await editWanted(node, table.name, table);
    say(`${table.name} is wanted on ${node}: the controller starts or changes it (a refusal shows as the node's error)`);
  } catch (e) {
    say(`${table.name}: ${e.message}`);
  }
}

/** Takes a source out of the wanted graph (if it is there). */
async function unwantSource(node, name) {
  await editWanted(node, name, null);
}

/** The wanted graph with `node`'s source `name` replaced by `table` (or
 *  dropped, for null): read with its version, written back with If-Match,
 *  read again if someone changed it meanwhile. */
async function editWanted(node, name, table) {
  await updateWanted((w) => {
    const before = (w.source ?? []).length;
    w.source = (w.source ?? []).filter((x) => !(x.node === node && x.name === name));
    if (table) w.source.push({ node, ...table });
    else if (w.source.length === before) return false; // not wanted: nothing to write
    if (w.source.length === 0) delete w.source;
    return true;
  }, session?.csrf);
}

// ---- previews and live views (players.js) ------------------------------------

const lives = new Map();

function openPreview(node, stream) {
  const key = `${node}\u0000${stream}`;
  if (previews.has(key)) return null;
  const p = preview(node, stream, { container: $('#previews'), onClose: () => previews.delete(key) });
  previews.set(key, p);
  p.box.scrollIntoView({ block: 'nearest' });
  return p.box;
}

/** Plays `stream` of `node` over WebRTC; the preview where WebRTC fails. */
function openLive(node, stream) {
  const key = `${node}\u0000${stream}`;
  if (lives.has(key)) return;
  const l = live(node, stream, {
    container: $('#previews'), csrf: () => session?.csrf, onClose: () => lives.delete(key),
    onFallback: (why) => { lives.delete(key); const b = openPreview(node, stream); if (b) b.dataset.webrtcFailed = why; },
  });
  lives.set(key, l);
  l.box.scrollIntoView({ block: 'nearest' });
}

boot();
