// The graph as a workspace against `framewire demo`: run with ui.test.mjs
// by `cargo test -p framewire --test browser browser_ui` (FW_URL,
// FW_OPERATOR, FW_VIEWER, FW_ADMIN, FW_ARTIFACTS, CHROMIUM).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { launch, login } from './helpers.mjs';

const URL = process.env.FW_URL;
const [opName, opPass] = (process.env.FW_OPERATOR ?? '').split(':');
const [viewName, viewPass] = (process.env.FW_VIEWER ?? '').split(':');
const [adminName, adminPass] = (process.env.FW_ADMIN ?? '').split(':');
const ART = process.env.FW_ARTIFACTS ?? '.';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

const port = (node, stream) => `#graph g.node[data-node="${node}"] g.stream[data-stream="${stream}"] circle.port`;
const edgeRow = (id) => `#edges tbody tr[data-edge-id="${id}"]`;

test('an operator wires by dragging a stream to a node, changes the edge in its popover and removes it', async () => {
  const page = await login(browser, URL, opName, opPass);
  // Every stream shows a thumbnail: a small JPEG the server made.
  const thumb = page.locator('#graph g.node[data-node="demo:source"] g.stream[data-stream="bars"] image.thumb');
  await thumb.waitFor();
  const t = await page.evaluate(async (href) => {
    const r = await fetch(href);
    const b = await createImageBitmap(await r.blob());
    return [r.status, r.headers.get('content-type'), b.width, b.height];
  }, await thumb.getAttribute('href'));
  assert.deepEqual(t.slice(0, 2), [200, 'image/jpeg']);
  assert.ok(t[2] >= 160 && t[2] <= 320, `thumbnail ${t[2]}x${t[3]}`);
  // ... on every stream of every node online, each a JPEG that decodes.
  const thumbs = await page.evaluate(async () => {
    const g = await (await fetch('/api/graph')).json();
    const want = g.nodes.filter((n) => n.online).flatMap((n) => n.streams.map((s) => `${n.name}/${s.name}`));
    const out = {};
    for (const w of want) {
      const [node, stream] = [w.slice(0, w.lastIndexOf('/')), w.slice(w.lastIndexOf('/') + 1)];
      const img = document.querySelector(`#graph g.node[data-node="${node}"] g.stream[data-stream="${stream}"] image.thumb`);
      if (!img) { out[w] = 'no thumbnail'; continue; }
      try {
        const r = await fetch(img.getAttribute('href'));
        const b = await createImageBitmap(await r.blob());
        out[w] = r.ok && b.width >= 16 ? 'ok' : `${r.status} ${b.width}x${b.height}`;
      } catch (e) {
        out[w] = String(e);
      }
    }
    return out;
  });
  assert.ok(Object.keys(thumbs).length >= 4, JSON.stringify(thumbs));
  assert.ok(Object.values(thumbs).every((v) => v === 'ok'), JSON.stringify(thumbs));

  // Drag the source's `bars` port onto the archive node.
  await page.locator('#graph g.node[data-node="demo:archive"]').scrollIntoViewIfNeeded();
  const from = await page.locator(port('demo:source', 'bars')).boundingBox();
  const to = await page.locator('#graph g.node[data-node="demo:archive"] rect').boundingBox();
  await page.mouse.move(from.x + from.width / 2, from.y + from.height / 2);
  await page.mouse.down();
  await page.mouse.move(to.x + to.width / 2, to.y + 20, { steps: 8 });
  assert.equal(await page.locator('#graph g.node[data-node="demo:archive"].drop').count(), 1, 'the target is not highlighted');
  await page.screenshot({ path: join(ART, 'graph-drag.png') });
  await page.mouse.up();
  const pop = page.locator('#graph-pop form.pop-wire');
  await pop.waitFor();
  assert.equal(await pop.locator('#pop-to').inputValue(), 'demo:archive');
  await pop.locator('#pop-local').fill('dragged');
  await pop.locator('#pop-priority').fill('200');
  await pop.locator('#pop-mode').selectOption('completeness');
  await pop.locator('#pop-max-frames').fill('12');
  await pop.locator('#pop-max-bytes').fill('4000000');
  await pop.locator('button[type=submit]').click();
  await pop.waitFor({ state: 'hidden' });
  const row = page.locator(edgeRow('demo:archive/dragged'));
  await row.waitFor();
  assert.equal(await row.locator('td').nth(4).textContent(), '200');
  await page.locator('#graph g.edge[data-edge-id="demo:archive/dragged"]').waitFor();

  // Click the edge: its popover changes the priority and the mode.
  await page.locator('#graph g.edge[data-edge-id="demo:archive/dragged"] text').click();
  const change = page.locator('#graph-pop .pop-edge[data-edge-id="demo:archive/dragged"] form.pop-change');
  await change.waitFor();
  assert.equal(await change.locator('#pop-priority').inputValue(), '200');
  assert.equal(await change.locator('#pop-max-frames').inputValue(), '12');
  assert.equal(await change.locator('#pop-max-bytes').inputValue(), '4000000');
  await change.locator('#pop-priority').fill('90');
  await change.locator('#pop-max-frames').fill('20');
  await page.locator('#graph-pop').screenshot({ path: join(ART, 'graph-edge-popover.png') });
  await change.locator('button[type=submit]').click();
  await page.waitForFunction((sel) => document.querySelector(sel)?.children[4].textContent === '90', edgeRow('demo:archive/dragged'));
  await page.waitForFunction((sel) => document.querySelector(sel)?.children[3].textContent.startsWith('completeness'), edgeRow('demo:archive/dragged'));
  const wanted = await page.evaluate(async () => (await fetch('/api/wanted', { headers: { accept: 'application/json' } })).json());
  const w = wanted.edge.find((e) => e.to === 'demo:archive' && e.local_name === 'dragged');
  assert.equal(w.priority, 90);
  assert.equal(w.mode, 'completeness');
  assert.equal(w.max_frames, 20);
  assert.equal(w.max_bytes, 4000000);

  // By the keyboard: Enter on a port opens the popover with a node to pick.
  await page.locator(port('demo:source', 'bars')).focus();
  await page.keyboard.press('Enter');
  await pop.waitFor();
  await page.keyboard.press('Escape');
  await pop.waitFor({ state: 'hidden' });

  // Remove it from its popover.
  await page.locator('#graph g.edge[data-edge-id="demo:archive/dragged"] text').click();
  await change.locator('button.pop-remove').click();
  await row.waitFor({ state: 'detached', timeout: 30_000 });
  await page.locator('#graph-wrap').screenshot({ path: join(ART, 'graph.png') });
  await page.context().close();
});

test('a viewer sees thumbnails and edge figures but has no ports and no edge controls', async () => {
  const page = await login(browser, URL, viewName, viewPass);
  await page.locator('#graph g.node[data-node="demo:source"] image.thumb').first().waitFor();
  assert.equal(await page.locator('#graph circle.port').count(), 0);
  const edge = page.locator('#graph g.edge text').first();
  await edge.click();
  await page.locator('#graph-pop .pop-edge').waitFor();
  assert.equal(await page.locator('#graph-pop form').count(), 0);
  assert.equal(await page.locator('#graph-pop button.pop-remove').count(), 0);
  // The node panel in words, as a viewer sees it.
  await page.keyboard.press('Escape');
  await page.locator('#graph g.node[data-node="demo:source"] rect').click();
  await page.locator('#node-describe dl').waitFor();
  await page.locator('#node-sources li[data-source="bars"]').waitFor();
  await page.locator('#node-describe dt', { hasText: 'uptime' }).waitFor();
  assert.doesNotMatch(await page.locator('#node-panel').textContent(), /null|undefined|NaN/);
  // In words: functions and features by name, the uptime in units, the
  // software and protocol versions as versions.
  const describe = Object.fromEntries(await page.locator('#node-describe dt').evaluateAll((dts) =>
    dts.map((dt) => [dt.textContent, dt.nextElementSibling?.textContent ?? ''])));
  assert.match(describe.functions, /^(source|relay|sink|controller)(, (source|relay|sink|controller))*$/, JSON.stringify(describe));
  assert.match(describe.functions, /source/);
  assert.match(describe.features, /^(none|(shm|opaque)(, (shm|opaque))*)$/, JSON.stringify(describe));
  assert.match(describe.uptime, /^\d+ (s|min \d+ s|h \d+ min|d \d+ h)$/, JSON.stringify(describe));
  assert.match(describe.software, /^framewire \d+\.\d+\.\d+/, JSON.stringify(describe));
  assert.match(describe['protocol version'], /^\d+$/, JSON.stringify(describe));
  assert.ok(!('function flags' in describe) && !('function_flags' in describe), 'no raw protocol fields');
  await page.locator('#node-panel').screenshot({ path: join(ART, 'node-panel.png') });
  await page.context().close();
});

/** Every control shown in the page has a name a screen reader says: its
 *  text, its label, an aria-label or a title. */
async function unnamedControls(page, atLeast) {
  const [shown, unnamed] = await page.evaluate(() => {
    const all = [...document.querySelectorAll('button, input, select, textarea, a[href], [role="button"], [tabindex="0"]')]
      .filter((e) => e.getClientRects().length > 0 && !e.closest('[hidden]'));
    return [all.length, all.filter((e) => {
      const name = e.getAttribute('aria-label') || e.getAttribute('title') || (e.labels && e.labels[0]?.textContent)
        || e.closest('label')?.textContent || (e.tagName === 'INPUT' ? '' : e.textContent) || e.getAttribute('placeholder');
      return !name || !name.trim();
    }).map((e) => e.outerHTML.slice(0, 120))];
  });
  assert.ok(shown >= atLeast, `only ${shown} controls shown`);
  return unnamed;
}

test('every control of every view has a name, and Tab reaches the graph', async () => {
  const page = await login(browser, URL, opName, opPass);
  await page.locator('#graph g.node[data-node="demo:source"] rect').click();
  await page.locator('#node-describe dl').waitFor();
  await page.locator('#node-sources li[data-source="bars"]').waitFor();
  assert.deepEqual(await unnamedControls(page, 30), [], 'graph view');
  for (const view of ['multiview', 'recordings']) {
    await page.locator(`#view-${view}`).click();
    await page.locator(`#${view}`).waitFor();
    assert.deepEqual(await unnamedControls(page, 5), [], `${view} view`);
  }
  await page.locator('#view-graph').click();
  // The keyboard alone gets to a node of the graph.
  let reached = false;
  for (let i = 0; i < 200 && !reached; i++) {
    await page.keyboard.press('Tab');
    reached = await page.evaluate(() => document.activeElement?.matches?.('#graph g.node') ?? false);
  }
  assert.ok(reached, 'Tab never reaches a node of the graph');
  await page.keyboard.press('Enter');
  await page.locator('#node-head h2').waitFor();
  await page.context().close();

  // An admin's page adds the administration: users, roles, tokens.
  const admin = await login(browser, URL, adminName, adminPass);
  await admin.locator('#admin').waitFor({ state: 'visible' });
  await admin.locator('#users tr[data-user]').first().waitFor();
  assert.deepEqual(await unnamedControls(admin, 35), [], 'graph view with the administration');
  await admin.context().close();
});

test('fifty nodes stay readable: no box or label over another, every name and stream shown, wired by drag', async () => {
  // The live graph message, with the demo's nodes copied to fifty (their
  // fields as the server sends them; names and edges made up): the
  // drawing is what is tested, in Chromium, not the nodes.
  const page = await login(browser, URL, opName, opPass, async (p) => {
    await p.routeWebSocket(/\/ws\/state$/, (ws) => {
      const server = ws.connectToServer();
      server.onMessage((m) => {
        const v = JSON.parse(m);
        if (v.graph?.nodes?.length) v.graph = fifty(v.graph);
        ws.send(JSON.stringify(v));
      });
    });
  });
  await page.locator('#graph g.node[data-node="wall:n49"]').waitFor();
  const boxes = await page.locator('#graph g.node').evaluateAll((gs) => gs.map((g) => {
    const rect = g.querySelector('rect');
    const r = rect.getBoundingClientRect();
    const name = g.querySelector('text');
    return { node: g.dataset.node, x: r.x, y: r.y, w: r.width, h: r.height,
      name: name?.textContent ?? '', nameWidth: name?.getComputedTextLength() ?? 0, width: rect.getBBox().width,
      streams: g.querySelectorAll('g.stream').length };
  }));
  assert.equal(boxes.length, 50);
  for (const [i, a] of boxes.entries()) {
    assert.ok(a.name.length > 0 && a.nameWidth + 10 <= a.width, `${a.node}: its name does not fit (${a.nameWidth} of ${a.width})`);
    assert.ok(a.streams >= 1, `${a.node}: no streams drawn`);
    for (const b of boxes.slice(i + 1)) {
      const apart = a.x + a.w <= b.x || b.x + b.w <= a.x || a.y + a.h <= b.y || b.y + b.h <= a.y;
      assert.ok(apart, `${a.node} and ${b.node} overlap`);
    }
  }
  // Every edge's figures readable: its label covers no node and no other
  // label (as drawn, in Chromium's fonts); one that fits nowhere is left
  // out, its figures in the edge's tooltip.
  const labels = await page.locator('#graph g.edge text').evaluateAll((ts) => ts.map((t) => {
    const r = t.getBoundingClientRect();
    return { edge: t.parentNode.dataset.edgeId, x: r.x, y: r.y, w: r.width, h: r.height };
  }));
  const edges = await page.locator('#graph g.edge').count();
  assert.ok(labels.length >= edges * 0.85, `only ${labels.length} of ${edges} edge labels drawn`);
  const apart = (a, b) => a.x + a.w <= b.x || b.x + b.w <= a.x || a.y + a.h <= b.y || b.y + b.h <= a.y;
  for (const [i, l] of labels.entries()) {
    for (const b of boxes) assert.ok(apart(l, b), `the label of ${l.edge} covers ${b.node}`);
    for (const o of labels.slice(i + 1)) assert.ok(apart(l, o), `the labels of ${l.edge} and ${o.edge} overlap`);
  }
  assert.match(await page.locator('#graph g.edge title').first().textContent(), /fps · .* Mbit\/s · .* drops/);
  // Readable: drawn at its minimum scale or larger, the rest scrolls.
  const scale = await page.locator('#graph').evaluate((svg) => svg.getBoundingClientRect().width / svg.viewBox.baseVal.width);
  assert.ok(scale >= 0.5, `drawn at ${scale.toFixed(2)} of its size`);
  const wrap = await page.locator('#graph-wrap').evaluate((w) => [w.scrollWidth > w.clientWidth || w.scrollHeight > w.clientHeight]);
  assert.ok(wrap[0], 'fifty nodes fit without scrolling: the scale check says nothing');
  await page.locator('#graph-wrap').screenshot({ path: join(ART, 'graph-50.png') });

  // Wire by drag across the crowd: from the first node to the last.
  const target = page.locator('#graph g.node[data-node="wall:n49"] rect');
  await target.scrollIntoViewIfNeeded();
  await page.locator(port('wall:n0', 'cam')).scrollIntoViewIfNeeded();
  const from = await page.locator(port('wall:n0', 'cam')).boundingBox();
  await target.scrollIntoViewIfNeeded();
  const to = await target.boundingBox();
  await page.mouse.move(from.x + from.width / 2, from.y + from.height / 2);
  await page.mouse.down();
  await page.mouse.move(to.x + to.width / 2, to.y + 20, { steps: 12 });
  await page.mouse.up();
  const pop = page.locator('#graph-pop form.pop-wire');
  await pop.waitFor();
  assert.equal(await pop.locator('#pop-to').inputValue(), 'wall:n49');
  await page.keyboard.press('Escape');
  await page.context().close();
});

/** Fifty nodes in the shape of `real`'s first online node with a stream:
 *  ten cameras, each through two relays to a viewer, and ten more
 *  viewers of the first relays. */
function fifty(real) {
  const model = real.nodes.find((n) => n.online && n.streams.length) ?? real.nodes[0];
  const stream = model.streams[0];
  const node = (i, streams) => ({
    ...model, name: `wall:n${i}`,
    streams: streams.map((name) => ({ ...stream, name, outputs: [] })),
  });
  const nodes = [], edges = [];
  const edgeModel = real.edges[0] ?? {};
  const edge = (from, to, s) => edges.push({
    ...edgeModel, id: `${to}/${s}`, upstream: from, downstream: to, stream: s, local_name: s, state: 'live', wanted: true,
  });
  for (let c = 0; c < 10; c++) {
    const cam = c * 5, r1 = cam + 1, r2 = cam + 2, view = cam + 3, side = cam + 4;
    nodes.push(node(cam, ['cam', 'cam-low']), node(r1, ['cam']), node(r2, ['cam']), node(view, ['cam']), node(side, ['cam']));
    edge(`wall:n${cam}`, `wall:n${r1}`, 'cam');
    edge(`wall:n${r1}`, `wall:n${r2}`, 'cam');
    edge(`wall:n${r2}`, `wall:n${view}`, 'cam');
    edge(`wall:n${r1}`, `wall:n${side}`, 'cam');
  }
  return { ...real, nodes, edges };
}
