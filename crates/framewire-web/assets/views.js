// The page's views: the graph (with the panels), the multiview and the
// recordings, one shown at a time, picked in the header. A view may keep
// its state in the page's address (`#multiview=…`, `#recordings`).

const VIEWS = { graph: '#app', multiview: '#multiview', recordings: '#recordings' };
const shown = new Map();

/** Shows view `name`; `onShow` callbacks registered for it run. */
export function showView(name, keepHash = false) {
  for (const [v, sel] of Object.entries(VIEWS)) {
    document.querySelector(sel).hidden = v !== name;
    document.querySelector(`#view-${v}`).setAttribute('aria-pressed', String(v === name));
  }
  if (!keepHash) history.replaceState(null, '', name === 'graph' ? location.pathname : `#${name}`);
  for (const f of shown.get(name) ?? []) f();
}

/** Runs `f` whenever view `name` is shown. */
export function onShow(name, f) {
  if (!shown.has(name)) shown.set(name, []);
  shown.get(name).push(f);
}

/** Wires the header's buttons. */
export function bindViews() {
  for (const v of Object.keys(VIEWS)) document.querySelector(`#view-${v}`).addEventListener('click', () => showView(v));
}
