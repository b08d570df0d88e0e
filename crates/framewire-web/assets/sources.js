// The sources of a node, in its panel: each source the node runs (its
// table read from the node, GET /api/nodes/{node}/sources/{name}) with
// its settings, changed or removed by an operator, and a form to add one.
// Adding and changing go through the wanted graph (the controller sends
// SOURCE_ADD or SOURCE_SET); removing takes it out of the wanted graph and
// asks the node (DELETE /api/nodes/{node}/sources/{name}), so that a
// source of the node's own configuration goes too. Compose sources get
// their layout editor (compose.js).
import { fill } from './dom.js';
import { compositors } from './compose.js';

/** The kinds a peer may add at run time (a `file` source is for a node's own configuration). */
const KINDS = ['test-pattern', 'solid', 'v4l2', 'x11', 'ffmpeg', 'rtsp', 'compose'];

/** A value as `--source` specs type it: numbers and booleans as such. */
function typed(v) {
  if (/^-?\d+$/.test(v)) return Number(v);
  if (/^-?\d*\.\d+$/.test(v)) return Number(v);
  if (v === 'true' || v === 'false') return v === 'true';
  return v;
}

/** `KEY=VALUE,...` (as `--source` writes them, `-` or `_` in keys) into a table. */
export function specToTable(kind, name, spec) {
  const t = { kind, name };
  for (const part of spec.split(',').map((p) => p.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new Error(`\`${part}\` is not KEY=VALUE`);
    t[part.slice(0, eq).trim().replace(/-/g, '_')] = typed(part.slice(eq + 1).trim());
  }
  return t;
}

/** A table's settings as `KEY=VALUE,...` (lists joined with `;`). */
export function tableToSpec(table) {
  return Object.entries(table)
    .filter(([k, v]) => k !== 'kind' && k !== 'name' && typeof v !== 'object')
    .map(([k, v]) => `${k}=${v}`)
    .concat(Object.entries(table).filter(([, v]) => Array.isArray(v) && v.every((x) => typeof x !== 'object'))
      .map(([k, v]) => `${k}=${v.join(';')}`))
    .join(',');
}

/**
 * Fills `box` with the sources of `node`.
 * `ui`: { graph, el, api, enc, canOperate, wantSource, unwantSource }.
 */
export async function loadSources(box, node, ui) {
  const n = ui.graph.nodes.find((x) => x.name === node);
  if (!n) return;
  const found = await Promise.all(n.streams.map(async (s) => {
    try {
      return (await ui.api('GET', `/api/nodes/${ui.enc(node)}/sources/${ui.enc(s.name)}`)).table ?? null;
    } catch { return null; } // a pulled stream: no source here
  }));
  const tables = found.filter(Boolean);
  const { el } = ui;
  const result = el('p', { id: 'sources-result', class: 'hint', role: 'status' });
  const rows = tables.map((t) => {
    // A compositor's layout is changed in its editor below.
    const own = t.kind !== 'compose';
    const spec = el('input', { class: 'source-spec', value: tableToSpec(t), 'aria-label': `settings of ${t.name}`, disabled: !ui.canOperate() || !own });
    return el('li', { 'data-source': t.name },
      el('span', { class: 'source-kind', text: `${t.name} (${t.kind}) ` }), spec,
      ui.canOperate() && own ? el('button', { class: 'source-apply', text: 'Apply', onclick: async () => {
        try { await ui.wantSource(node, specToTable(t.kind, t.name, spec.value), result); } catch (e) { result.textContent = e.message; }
      } }) : null,
      ui.canOperate() ? el('button', { class: 'source-remove danger', text: 'Remove', onclick: async () => {
        try {
          await ui.unwantSource(node, t.name);
          try {
            await ui.api('DELETE', `/api/nodes/${ui.enc(node)}/sources/${ui.enc(t.name)}`);
          } catch (e) {
            // The controller, told it is no longer wanted, was quicker.
            if (!/no source named/.test(e.message)) throw e;
          }
          result.textContent = `${t.name} removed`;
        } catch (e) { result.textContent = `${t.name}: ${e.message}`; }
      } }) : null);
  });
  const kind = el('select', { id: 'source-new-kind', 'aria-label': 'kind' }, ...KINDS.filter((k) => k !== 'compose').map((k) => el('option', { text: k })));
  const name = el('input', { id: 'source-new-name', placeholder: 'stream name', 'aria-label': 'stream name' });
  const spec = el('input', { id: 'source-new-spec', placeholder: 'size=1280x720,fps=30', 'aria-label': 'settings' });
  const add = ui.canOperate()
    ? el('p', {}, 'Add ', kind, ' ', name, ' ', spec, ' ', el('button', { id: 'source-add', text: 'Add source', onclick: async () => {
      try { await ui.wantSource(node, specToTable(kind.value, name.value.trim(), spec.value), result); } catch (e) { result.textContent = e.message; }
    } }))
    : null;
  fill(box,
    el('h3', { text: 'Sources' }),
    rows.length ? el('ul', { class: 'sources' }, ...rows) : el('p', { class: 'hint', text: 'no sources of its own' }),
    add, result,
    ...compositors(node, tables, ui));
}
