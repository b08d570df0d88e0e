// Where each node of the graph goes (no DOM, tested by graphlayout.test.mjs):
// nodes grouped by site (one band per site, this site's first), in
// columns by their depth along the edges (sources left, sinks right), a column taller than MAX_ROWS nodes split in several, each node
// as tall as its streams need. The drawing shrinks to fit its pane down to
// MIN_SCALE and scrolls beyond: it never shrinks below readable.

export const W = 200;          // node width
export const HEAD = 54;        // node header: name, streams, latency
export const ROW = 40;         // one stream row (thumbnail, name, port)
export const GAP_X = 150;      // between columns (edge labels go there)
export const GAP_Y = 24;       // between nodes of a column
export const MAX_ROWS = 8;     // nodes per column before it splits
const MARGIN = 20;

/** Height of a node with `streams` streams. */
export function nodeHeight(streams) {
  return HEAD + Math.max(0, streams) * ROW + (streams ? 6 : 0);
}

const BAND_HEAD = 28;           // a site band's title
const BAND_GAP = 16;            // between site bands

/**
 * `graph` is {nodes: [{name, site_id, streams: [...]}], edges: [{upstream, downstream}]}.
 * Returns {pos: Map(name -> {x, y, h}), bands: [{site, y, h}], width, height}.
 * The nodes of each site are a band of their own, this site's (0) first,
 * each band laid out in columns by depth; with one site there is no band.
 */
export function layout(graph) {
  const names = graph.nodes.map((n) => n.name);
  const depth = new Map(names.map((n) => [n, 0]));
  // Longest path from a source, bounded by the node count (cycles stop there).
  for (let i = 0; i < names.length; i++) {
    let changed = false;
    for (const e of graph.edges) {
      if (!depth.has(e.upstream) || !depth.has(e.downstream) || e.upstream === e.downstream) continue;
      const d = Math.min(depth.get(e.upstream) + 1, names.length);
      if (d > depth.get(e.downstream)) { depth.set(e.downstream, d); changed = true; }
    }
    if (!changed) break;
  }
  const sites = [...new Set(graph.nodes.map((n) => n.site_id ?? 0))].sort((a, b) => a - b);
  const banded = sites.length > 1;
  const pos = new Map(), bands = [];
  let top = 0, width = 0;
  for (const site of sites) {
    const columns = new Map();
    for (const n of graph.nodes.filter((m) => (m.site_id ?? 0) === site)) {
      const d = depth.get(n.name);
      if (!columns.has(d)) columns.set(d, []);
      columns.get(d).push(n);
    }
    const y0 = top + (banded ? BAND_HEAD : 0);
    let x = MARGIN, bottom = y0;
    for (const d of [...columns.keys()].sort((a, b) => a - b)) {
      const col = columns.get(d);
      for (let start = 0; start < col.length; start += MAX_ROWS) {
        let y = y0 + MARGIN;
        for (const n of col.slice(start, start + MAX_ROWS)) {
          const h = nodeHeight(n.streams?.length ?? 0);
          pos.set(n.name, { x, y, h });
          y += h + GAP_Y;
        }
        bottom = Math.max(bottom, y - GAP_Y + MARGIN);
        width = Math.max(width, x + W + MARGIN);
        x += W + GAP_X;
      }
    }
    if (banded) bands.push({ site, y: top, h: bottom - top });
    top = bottom + (banded ? BAND_GAP : 0);
  }
  const height = top - (banded ? BAND_GAP : 0);
  return { pos, bands, width: Math.max(width, 400), height: Math.max(height, 200) };
}

/** The y of stream `i`'s row centre in a node at `p`. */
export function rowY(p, i) {
  return i < 0 ? p.y + HEAD / 2 : p.y + HEAD + i * ROW + ROW / 2;
}

/** The drawing's smallest scale (its 12 px names stay 6 px or more). */
export const MIN_SCALE = 0.5;

/** The scale a drawing `width` wide is shown at in a pane `avail` wide. */
export function fitScale(width, avail) {
  if (!(avail > 0) || !(width > 0)) return 1;
  return Math.max(MIN_SCALE, Math.min(1, avail / width));
}

// Edge labels: two lines of figures between the columns, each put where it
// covers no node and no other label, on or beside its edge's curve; a label
// that fits nowhere is not drawn (the edge's popover and its tooltip carry
// the same figures).

export const LABEL_W = 136;    // the widest two-line label at 11 px ("999.9 fps · 999.9 Mbit/s")
export const LABEL_H = 28;     // two lines

/** The point at `t` on the edge from (x1, y1) to (x2, y2) as drawn: a cubic
 *  whose control points are both at the middle x. */
export function curvePoint(e, t) {
  const mx = (e.x1 + e.x2) / 2;
  const a = (1 - t) ** 3, b = 3 * (1 - t) ** 2 * t, c = 3 * (1 - t) * t ** 2, d = t ** 3;
  return { x: a * e.x1 + (b + c) * mx + d * e.x2, y: (a + b) * e.y1 + (c + d) * e.y2 };
}

// From the middle outwards: 0.5, 0.46, 0.54, … 0.1, 0.9.
const ALONG = [0.5, ...Array.from({ length: 10 }, (_, k) => [0.46 - 0.04 * k, 0.54 + 0.04 * k]).flat()];

/**
 * Where each label of `edges` ([{x1, y1, x2, y2}]) goes, given the node
 * boxes ([{x, y, h}], W wide): its centre {x, y}, or null when it fits
 * nowhere. The first edges get the first choice.
 */
export function placeLabels(edges, boxes) {
  const taken = boxes.map((b) => ({ x: b.x, y: b.y, w: W, h: b.h }));
  const clear = (r) => taken.every((o) => r.x + r.w <= o.x || o.x + o.w <= r.x || r.y + r.h <= o.y || o.y + o.h <= r.y);
  return edges.map((e) => {
    for (const t of ALONG) {
      const p = curvePoint(e, t);
      // Just above the line, then just below it.
      for (const cy of [p.y - LABEL_H / 2 - 2, p.y + LABEL_H / 2 + 2]) {
        const r = { x: p.x - LABEL_W / 2, y: cy - LABEL_H / 2, w: LABEL_W, h: LABEL_H };
        if (clear(r)) {
          taken.push(r);
          return { x: p.x, y: cy };
        }
      }
    }
    return null;
  });
}
