// node --test: where the graph's nodes go (graphlayout.js). Run by
// `cargo test -p framewire-web --test wire_vectors` with wire.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { layout, W, nodeHeight, rowY, HEAD, fitScale, MIN_SCALE, placeLabels, curvePoint, LABEL_W, LABEL_H, GAP_X } from './graphlayout.js';

const node = (name, streams = 1) => ({ name, streams: Array.from({ length: streams }, (_, i) => ({ name: `s${i}` })) });

function overlaps(a, b) {
  return a.x < b.x + W && b.x < a.x + W && a.y < b.y + b.h && b.y < a.y + a.h;
}

test('sources left, relays after them, sinks right', () => {
  const g = { nodes: [node('sink', 0), node('relay'), node('cam')], edges: [{ upstream: 'cam', downstream: 'relay' }, { upstream: 'relay', downstream: 'sink' }] };
  const { pos } = layout(g);
  assert.ok(pos.get('cam').x < pos.get('relay').x && pos.get('relay').x < pos.get('sink').x);
  assert.equal(pos.get('sink').h, nodeHeight(0));
  assert.equal(pos.get('relay').h, HEAD + 40 + 6);
});

test('a cycle ends: every node placed, none overlapping', () => {
  const g = { nodes: [node('a'), node('b'), node('c')], edges: [{ upstream: 'a', downstream: 'b' }, { upstream: 'b', downstream: 'a' }, { upstream: 'b', downstream: 'c' }] };
  const { pos } = layout(g);
  assert.equal(pos.size, 3);
});

test('50 nodes stay readable: no two boxes overlap, columns split, the drawing scrolls rather than shrinks', () => {
  // 10 cameras, each relayed by 2 relays, each relay seen by one viewer: 10 + 20 + 20.
  const nodes = [], edges = [];
  for (let c = 0; c < 10; c++) {
    nodes.push(node(`cam${c}`, 2));
    for (let r = 0; r < 2; r++) {
      nodes.push(node(`relay${c}.${r}`, 1));
      nodes.push(node(`view${c}.${r}`, 0));
      edges.push({ upstream: `cam${c}`, downstream: `relay${c}.${r}` }, { upstream: `relay${c}.${r}`, downstream: `view${c}.${r}` });
    }
  }
  const { pos, width, height } = layout({ nodes, edges });
  assert.equal(pos.size, 50);
  const all = [...pos.values()];
  for (let i = 0; i < all.length; i++) {
    for (let j = i + 1; j < all.length; j++) assert.ok(!overlaps(all[i], all[j]), `boxes ${i} and ${j} overlap`);
    assert.ok(all[i].x + W <= width && all[i].y + all[i].h <= height, `box ${i} outside the drawing`);
  }
  // No column holds more than 8 nodes: 20 relays take 3 columns.
  const perX = new Map();
  for (const p of all) perX.set(p.x, (perX.get(p.x) ?? 0) + 1);
  assert.ok(Math.max(...perX.values()) <= 8);
  assert.equal(perX.size, 2 + 3 + 3);
  // A 50-node graph is a couple of screens each way at scale 1: in an
  // 800-pixel pane it is shown at half size and scrolls, never smaller.
  assert.ok(height < 1400 && width < 3000, `${width}x${height}`);
  assert.equal(fitScale(width, 800), MIN_SCALE);
});

test('a stream row sits inside its node; the header is the target without one', () => {
  const { pos } = layout({ nodes: [node('cam', 3)], edges: [] });
  const p = pos.get('cam');
  for (let i = 0; i < 3; i++) assert.ok(rowY(p, i) > p.y + HEAD && rowY(p, i) < p.y + p.h);
  assert.equal(rowY(p, -1), p.y + HEAD / 2);
});

test('a drawing shrinks to fit its pane, down to half size, and never grows', () => {
  assert.equal(fitScale(600, 800), 1);
  assert.equal(fitScale(1000, 800), 0.8);
  assert.equal(fitScale(4000, 800), 0.5);
  assert.equal(fitScale(1000, 0), 1, 'a pane not laid out yet');
});

test('each site is a band of its own, this site first, and no box crosses a band', () => {
  const here = (name) => ({ ...node(name), site_id: 0 });
  const there = (name, site) => ({ ...node(name), site_id: site });
  const g = {
    nodes: [there('2/lab:cam', 2), here('home:view'), there('1/far:cam', 1), here('home:relay')],
    edges: [{ upstream: '2/lab:cam', downstream: 'home:relay' }, { upstream: 'home:relay', downstream: 'home:view' }],
  };
  const { pos, bands, height } = layout(g);
  assert.deepEqual(bands.map((b) => b.site), [0, 1, 2]);
  for (const [name, p] of pos) {
    const site = g.nodes.find((n) => n.name === name).site_id;
    const b = bands.find((x) => x.site === site);
    assert.ok(p.y >= b.y + 20 && p.y + p.h <= b.y + b.h, `${name} inside site ${site}'s band`);
  }
  for (let i = 1; i < bands.length; i++) assert.ok(bands[i].y >= bands[i - 1].y + bands[i - 1].h, 'bands do not overlap');
  assert.ok(height >= bands[2].y + bands[2].h);
  // One site: no bands, as before.
  assert.deepEqual(layout({ nodes: [here('a'), here('b')], edges: [] }).bands, []);
});

test('edge labels cover no node and no other label, and stay by their edge', () => {
  // Fan-outs and long edges: each camera to four viewers, one of them two columns on.
  const nodes = [], edges = [];
  for (let c = 0; c < 6; c++) {
    nodes.push(node(`cam${c}`, 1), node(`relay${c}`, 1));
    edges.push({ upstream: `cam${c}`, downstream: `relay${c}`, stream: 's0', local_name: 's0' });
    for (let v = 0; v < 3; v++) {
      nodes.push(node(`view${c}.${v}`, 1));
      edges.push({ upstream: `relay${c}`, downstream: `view${c}.${v}` });
    }
    nodes.push(node(`far${c}`, 0));
    edges.push({ upstream: `cam${c}`, downstream: `far${c}` }, { upstream: `relay${c}`, downstream: `far${c}` });
  }
  const { pos } = layout({ nodes, edges });
  const lines = edges.map((e) => {
    const a = pos.get(e.upstream), b = pos.get(e.downstream);
    return { x1: a.x + W, y1: rowY(a, 0), x2: b.x, y2: rowY(b, 0) };
  });
  const at = placeLabels(lines, [...pos.values()]);
  const rect = (p) => ({ x: p.x - LABEL_W / 2, y: p.y - LABEL_H / 2, w: LABEL_W, h: LABEL_H });
  const apart = (a, b) => a.x + a.w <= b.x || b.x + b.w <= a.x || a.y + a.h <= b.y || b.y + b.h <= a.y;
  const placed = at.filter(Boolean).map(rect);
  assert.ok(placed.length >= edges.length * 0.85, `only ${placed.length} of ${edges.length} labels placed`);
  for (const [i, r] of placed.entries()) {
    for (const p of pos.values()) assert.ok(apart(r, { x: p.x, y: p.y, w: W, h: p.h }), `label ${i} covers a node`);
    for (const o of placed.slice(i + 1)) assert.ok(apart(r, o), `label ${i} covers another`);
  }
  // Each label touches its edge's curve or sits right beside it.
  for (const [i, p] of at.entries()) {
    if (!p) continue;
    const near = Array.from({ length: 41 }, (_, k) => curvePoint(lines[i], k / 40))
      .some((q) => Math.abs(q.x - p.x) <= LABEL_W / 2 && Math.abs(q.y - p.y) <= LABEL_H / 2 + 3);
    assert.ok(near, `label ${i} is away from its edge`);
  }
  // A label fits between two columns.
  assert.ok(LABEL_W < GAP_X);
});

test('a lone edge\'s label sits just above its middle', () => {
  const e = { x1: 0, y1: 100, x2: 150, y2: 100 };
  const [p] = placeLabels([e], []);
  assert.deepEqual(p, { x: 75, y: 100 - LABEL_H / 2 - 2 });
  assert.deepEqual(curvePoint(e, 0), { x: 0, y: 100 });
  assert.deepEqual(curvePoint({ x1: 0, y1: 0, x2: 100, y2: 50 }, 1), { x: 100, y: 50 });
});
