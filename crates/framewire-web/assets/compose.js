// The layout editor of compose sources, in the node panel (docs/compose.md):
// a compositor's inputs picked from every stream in the graph, put in
// order, its layout chosen, applied through the wanted graph (the
// controller sends SOURCE_ADD or SOURCE_SET; a running compositor takes a
// change at its next frame, with no gap). Its table is read from the node
// (GET /api/nodes/{node}/sources/{name}).

/** An input's name in the layout: `NAME=` if given, else its stream. */
export function inputName(spec) {
  const s = spec.trim();
  const eq = s.indexOf('=');
  if (eq >= 0) return s.slice(0, eq).trim();
  const slash = s.lastIndexOf('/');
  return slash >= 0 ? s.slice(slash + 1) : s;
}

/** Where an input's frames come from: `[HOST:PORT/]STREAM`. */
export function inputFrom(spec) {
  const eq = spec.indexOf('=');
  return (eq >= 0 ? spec.slice(eq + 1) : spec).trim();
}

/** The inputs of a table (a list, or `a;b` as a command line writes it). */
function inputsOf(table) {
  const i = table.inputs;
  if (Array.isArray(i)) return i.map(String);
  if (typeof i === 'string') return i.split(';').map((s) => s.trim()).filter(Boolean);
  return [];
}

/** A name not among `taken`: `base`, else `base-2`, `base-3`, ... */
function freeName(base, taken) {
  if (!taken.includes(base)) return base;
  for (let n = 2; ; n++) if (!taken.includes(`${base}-${n}`)) return `${base}-${n}`;
}

/**
 * The table to want after an edit: inputs as `NAME=FROM` in their order,
 * the layout; a custom layout keeps its tiles (a removed input's go, an
 * added input gets the lower right quarter, above the others).
 */
export function editedTable(table, rows, layout) {
  const out = { ...table, inputs: rows.map((r) => `${r.name}=${r.from}`), layout };
  if (layout === 'custom') {
    const names = rows.map((r) => r.name);
    const tiles = (table.tile ?? []).filter((t) => names.includes(t.input));
    const [w, h] = String(table.size ?? '1920x1080').split('x').map(Number);
    let z = Math.max(0, ...tiles.map((t) => t.z ?? 0));
    for (const n of names) {
      if (tiles.some((t) => t.input === n)) continue;
      z += 1;
      tiles.push({ input: n, rect: { x: (w / 2) & ~1, y: (h / 2) & ~1, w: (w / 2) & ~1, h: (h / 2) & ~1 }, z, label: n });
    }
    out.tile = tiles;
  } else {
    delete out.tile;
  }
  return out;
}

/**
 * The compositors of `node` in its panel, from the tables of the sources
 * it runs (`sources.js` reads them): an editor for each compose source,
 * and (for an operator) a button to make a new one.
 * `ui`: { graph, el, api, enc, canOperate, wantSource }.
 */
export function compositors(node, tables, ui) {
  const n = ui.graph.nodes.find((x) => x.name === node);
  const editors = tables.filter((t) => t.kind === 'compose').map((t) => editor(node, t, false, ui));
  const fresh = ui.canOperate()
    ? ui.el('button', { id: 'compose-new', text: 'New compositor', title: 'several streams on one canvas, served by this node',
      onclick: () => {
        const taken = (n?.streams ?? []).map((s) => s.name);
        const t = { kind: 'compose', name: freeName('wall', taken), size: '1280x720', fps: 30, inputs: [], layout: 'grid' };
        fresh.replaceWith(editor(node, t, true, ui));
      } })
    : null;
  if (editors.length === 0 && !fresh) return [];
  return [ui.el('h3', { text: 'Compositors' }), ...editors, fresh];
}

/** Every stream in the graph a compositor on `node` could show. */
function choices(node, own, graph) {
  const out = [];
  for (const m of graph.nodes) {
    for (const s of m.streams) {
      if (m.name === node && (s.name === own || s.name.startsWith(`${own}.`))) continue;
      out.push({ value: m.name === node ? s.name : `${m.addr}/${s.name}`, label: `${m.name} / ${s.name}` });
    }
  }
  return out;
}

function editor(node, table, isNew, ui) {
  const { el } = ui;
  const locked = !ui.canOperate();
  const options = choices(node, table.name, ui.graph);
  const rows = inputsOf(table).map((spec) => ({ name: inputName(spec), from: inputFrom(spec) }));
  const select = (value, cls) => {
    const known = options.some((o) => o.value === value);
    const s = el('select', { class: cls, disabled: locked, 'aria-label': 'stream' },
      ...(known || !value ? [] : [el('option', { value, text: `${value} (not in the graph)` })]),
      ...options.map((o) => el('option', { value: o.value, text: o.label })));
    if (value) s.value = value;
    return s;
  };
  const layouts = ['grid', 'pip', 'side-by-side', ...(table.layout === 'custom' ? ['custom'] : [])];
  const layout = el('select', { class: 'compose-layout', disabled: locked, 'aria-label': 'layout' },
    ...layouts.map((l) => el('option', { value: l, text: l })));
  layout.value = table.layout ?? 'grid';
  const list = el('ol', { class: 'compose-inputs' });
  const result = el('span', { class: 'compose-result hint', role: 'status' });
  const name = isNew ? el('input', { class: 'compose-name', value: table.name, 'aria-label': 'stream name', disabled: locked }) : null;
  const draw = () => {
    list.replaceChildren(...rows.map((r, i) => {
      const from = select(r.from, 'compose-from');
      from.addEventListener('change', () => { r.from = from.value; });
      return el('li', { 'data-input': r.name },
        el('span', { class: 'compose-input-name', text: r.name }), ' ', from,
        locked ? null : el('button', { class: 'compose-up', text: '↑', title: 'one tile earlier', 'aria-label': `move ${r.name} up`, disabled: i === 0,
          onclick: () => { [rows[i - 1], rows[i]] = [rows[i], rows[i - 1]]; draw(); } }),
        locked ? null : el('button', { class: 'compose-remove', text: '✕', title: 'take this input off', 'aria-label': `remove ${r.name}`,
          onclick: () => { rows.splice(i, 1); draw(); } }));
    }));
  };
  draw();
  const add = select('', 'compose-add-from');
  const live = isNew ? null : el('img', { class: 'compose-live', alt: `${table.name}, live`, src: `/stream/${ui.enc(node)}/${ui.enc(table.name)}.mjpeg` });
  const apply = async () => {
    if (rows.length === 0) { result.textContent = 'add at least one input'; return; }
    const t = editedTable(table, rows, layout.value);
    if (name) t.name = name.value.trim();
    await ui.wantSource(node, t, result);
  };
  return el('div', { class: 'compose-editor', 'data-source': table.name },
    el('h4', { text: isNew ? 'New compositor' : `${table.name} (${table.size ?? '1920x1080'})` }),
    live,
    name ? el('label', {}, 'Stream ', name) : null,
    el('label', {}, 'Layout ', layout),
    list,
    locked ? null : el('p', {}, el('label', {}, 'Add ', add), ' ',
      el('button', { class: 'compose-add', text: 'Add input', onclick: () => {
        if (!add.value) return;
        const stream = add.value.slice(add.value.lastIndexOf('/') + 1);
        rows.push({ name: freeName(stream, rows.map((r) => r.name)), from: add.value });
        draw();
      } })),
    locked ? null : el('p', {}, el('button', { class: 'compose-apply', text: isNew ? 'Start' : 'Apply', onclick: apply }), ' ', result),
  );
}
