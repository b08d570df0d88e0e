// The graph as a workspace against `framewire demo`: run with ui.test.mjs
// by `cargo test -p framewire --test browser browser_ui` (FW_URL,
// FW_OPERATOR, FW_VIEWER, FW_ARTIFACTS, CHROMIUM).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { launch, login } from './helpers.mjs';

const URL = process.env.FW_URL;
const [opName, opPass] = (process.env.FW_OPERATOR ?? '').split(':');
const [viewName, viewPass] = (process.env.FW_VIEWER ?? '').split(':');
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
  await change.locator('#pop-priority').fill('90');
  await change.locator('#pop-mode').selectOption('completeness');
  await page.locator('#graph-pop').screenshot({ path: join(ART, 'graph-edge-popover.png') });
  await change.locator('button[type=submit]').click();
  await page.waitForFunction((sel) => document.querySelector(sel)?.children[4].textContent === '90', edgeRow('demo:archive/dragged'));
  await page.waitForFunction((sel) => document.querySelector(sel)?.children[3].textContent.startsWith('completeness'), edgeRow('demo:archive/dragged'));
  const wanted = await page.evaluate(async () => (await fetch('/api/wanted', { headers: { accept: 'application/json' } })).json());
  const w = wanted.edge.find((e) => e.to === 'demo:archive' && e.local_name === 'dragged');
  assert.equal(w.priority, 90);
  assert.equal(w.mode, 'completeness');

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
});
