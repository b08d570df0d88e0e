// Shutting a node down from its panel, for real: run last by
// `cargo test -p framewire --test browser browser_ui`, as it takes the
// demo's viewer node away (the environment is ui.test.mjs's).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { launch, login } from './helpers.mjs';

const URL = process.env.FW_URL;
const [opName, opPass] = (process.env.FW_OPERATOR ?? '').split(':');
const [adminName, adminPass] = (process.env.FW_ADMIN ?? '').split(':');
const NODE = 'demo:viewer';

let browser;
before(async () => {
  assert.ok(URL, 'FW_URL is not set: run through cargo test -p framewire --test browser');
  browser = await launch();
});
after(async () => { await browser?.close(); });

/** Whether a TCP connection to `addr` (host:port) is accepted. */
function accepts(addr) {
  const i = addr.lastIndexOf(':');
  return new Promise((resolve) => {
    const s = connect({ host: addr.slice(0, i), port: Number(addr.slice(i + 1)) });
    s.setTimeout(2000, () => { s.destroy(); resolve(false); });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

test('an operator has no shutdown button; an admin shuts a node down after confirming and it stops', async () => {
  const op = await login(browser, URL, opName, opPass);
  await op.locator(`#graph g.node[data-node="${NODE}"]`).click();
  await op.locator('#node-head').waitFor();
  await op.locator('#node-head dd').first().waitFor();
  assert.equal(await op.locator('#shutdown-btn').count(), 0, 'an operator can shut a node down');
  await op.context().close();

  const page = await login(browser, URL, adminName, adminPass);
  const graph = await (await page.request.get(new globalThis.URL('/api/graph', URL).href)).json();
  const addr = graph.nodes.find((n) => n.name === NODE)?.addr;
  assert.ok(addr && (await accepts(addr)), `${NODE} does not listen at ${addr}`);
  const posts = [];
  page.on('request', (r) => {
    if (r.method() === 'POST' && /\/api\/nodes\/demo(%3A|:)viewer\/shutdown$/.test(r.url())) posts.push(r.headers()['x-csrf-token']);
  });
  await page.locator(`#graph g.node[data-node="${NODE}"]`).click();
  // Cancelling the confirmation sends nothing.
  page.once('dialog', (d) => d.dismiss());
  await page.locator('#shutdown-btn').click();
  await page.waitForTimeout(300);
  assert.equal(posts.length, 0, 'a cancelled shutdown was sent');
  page.once('dialog', (d) => d.accept());
  await page.locator('#shutdown-btn').click();
  await page.locator('#shutdown-result', { hasText: 'shutting down' }).waitFor();
  assert.equal(posts.length, 1);
  assert.ok(posts[0], 'the shutdown carries no CSRF token');
  // The node stops: the graph shows it offline and its port is closed.
  await page.locator(`#graph g.node.offline[data-node="${NODE}"]`).waitFor({ timeout: 10_000 });
  assert.equal(await accepts(addr), false, `${NODE} still listens after shutting down`);
  await page.context().close();
});
