// The multiview (docs/web.md, "Multiview"): any number of streams live
// side by side, each tile with how old its pictures are when shown, a tile
// full screen at a click (or Enter / f on a focused tile). A tile plays
// over WebRTC (WHEP) when the stream is H.264 already and as the JPEG
// preview otherwise, or as asked. The tiles are kept in the page's
// address (#multiview=node/stream,...), so a wall screen can open it.
import { el, enc } from './dom.js';
import { preview, live } from './players.js';
import { showView, onShow } from './views.js';

const $ = (sel) => document.querySelector(sel);
const tiles = new Map();
let graphOf = () => null;
let csrfOf = () => null;
/** Tiles the address named, opened once the first graph says their formats. */
let pending = [];

function streamsOf(g) {
  const out = [];
  for (const n of g?.nodes ?? []) {
    if (!n.online) continue;
    for (const s of n.streams) out.push({ node: n.name, stream: s.name, format: s.format });
  }
  return out;
}

/** The stream picker, kept to the graph. */
export function multiviewGraphChanged() {
  const sel = $('#mv-stream');
  const keep = sel.value;
  const opts = streamsOf(graphOf()).map((s) => el('option', { value: `${s.node}/${s.stream}`, text: `${s.node} / ${s.stream} (${s.format})` }));
  sel.replaceChildren(...opts);
  if (opts.some((o) => o.value === keep)) sel.value = keep;
  if (graphOf()) for (const [node, stream] of pending.splice(0)) addTile(node, stream);
}

function saveHash() {
  const list = [...tiles.keys()].map((k) => k.split('\u0000').map(enc).join('/')).join(',');
  history.replaceState(null, '', list ? `#multiview=${list}` : '#multiview');
}

function layoutGrid() {
  const n = Math.max(1, tiles.size);
  $('#mv-grid').style.setProperty('--cols', String(Math.ceil(Math.sqrt(n))));
  $('#mv-empty').hidden = tiles.size > 0;
}

function fullScreen(tile) {
  if (document.fullscreenElement === tile) document.exitFullscreen();
  else tile.requestFullscreen().catch((e) => { $('#mv-error').textContent = `full screen: ${e.message}`; });
}

/** Adds a tile for `node`/`stream`: `kind` is `auto`, `webrtc` or `mjpeg`. */
export function addTile(node, stream, kind = 'auto') {
  const key = `${node}\u0000${stream}`;
  if (tiles.has(key)) return;
  const format = streamsOf(graphOf()).find((s) => s.node === node && s.stream === stream)?.format;
  const webrtc = kind === 'webrtc' || (kind === 'auto' && format === 'h264');
  const tile = el('div', { class: 'tile', tabindex: '0', 'data-node': node, 'data-stream': stream, 'aria-label': `${node} / ${stream}` });
  const full = el('button', { class: 'mv-full', text: 'Full screen', 'aria-label': `full screen: ${node} / ${stream}`, onclick: () => fullScreen(tile) });
  tile.append(full);
  tile.addEventListener('keydown', (ev) => {
    if (ev.target === tile && (ev.key === 'Enter' || ev.key === 'f')) { ev.preventDefault(); fullScreen(tile); }
  });
  const closed = () => { tile.remove(); tiles.delete(key); saveHash(); layoutGrid(); };
  const jpeg = () => preview(node, stream, { container: tile, onClose: closed });
  const player = webrtc
    ? live(node, stream, {
        container: tile, csrf: csrfOf, onClose: closed,
        onFallback: (why) => { const p = jpeg(); p.box.dataset.webrtcFailed = why; tiles.set(key, p); },
      })
    : jpeg();
  tiles.set(key, player);
  $('#mv-grid').append(tile);
  saveHash();
  layoutGrid();
}

/** Wires the controls; opens the tiles the address names. */
export function startMultiview(graph, csrf) {
  graphOf = graph;
  csrfOf = csrf;
  onShow('multiview', () => { saveHash(); multiviewGraphChanged(); });
  $('#mv-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = $('#mv-stream').value;
    if (!v) { $('#mv-error').textContent = 'no stream to add: no node serves one yet'; return; }
    $('#mv-error').textContent = '';
    const i = v.lastIndexOf('/');
    addTile(v.slice(0, i), v.slice(i + 1), $('#mv-kind').value);
  });
  $('#mv-clear').addEventListener('click', () => { for (const t of [...tiles.values()]) t.close(); });
  const m = /^#multiview(?:=(.*))?$/.exec(location.hash);
  if (m) {
    showView('multiview', true);
    for (const part of (m[1] ?? '').split(',').filter(Boolean)) {
      const [node, stream] = part.split('/').map(decodeURIComponent);
      if (node && stream) pending.push([node, stream]);
    }
  }
  layoutGrid();
}
