// Alerts in the page, pushed live: run by `cargo test -p framewire --test
// browser browser_alerts`, which starts `framewire up` with a controller
// (users: an operator and a viewer), a test-pattern node `host:cam` it
// watches, restarted 3 s after it ends, and a node that cannot start; it
// passes FW_URL, FW_OPERATOR, FW_VIEWER, FW_ARTIFACTS and CHROMIUM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { launch, login as loginAt } from './helpers.mjs';

const URL = process.env.FW_URL;
const [opName, opPass] = (process.env.FW_OPERATOR ?? '').split(':');
const [viewName, viewPass] = (process.env.FW_VIEWER ?? '').split(':');
const ART = process.env.FW_ARTIFACTS ?? '.';
const login = (browser, name, password) => loginAt(browser, URL, name, password);

test('a killed node is an alert within a second; an operator acknowledges it, a viewer cannot', async () => {
  const browser = await launch();
  try {
    const op = await login(browser, opName, opPass);
    const viewer = await login(browser, viewName, viewPass);
    // The supervisor gives up on the node that cannot start: an alert.
    const failed = op.locator('#alerts tr[data-kind="child-failed"]', { hasText: 'broken' });
    await failed.waitFor();
    assert.match(await failed.locator('.alert-message').textContent(), /supervised node broken failed: .*nope/);

    // The camera node is online, then killed.
    await op.locator('#graph g.node[data-node="host:cam"]:not(.offline)').waitFor();
    const host = await op.evaluate(async () => (await fetch('/api/host')).json());
    const cam = host.nodes.find((n) => n.name === 'cam');
    assert.ok(cam?.pid, `the camera node's pid: ${JSON.stringify(host)}`);
    const offline = (page) => page.locator('#alerts tr.active[data-kind="node-offline"]', { hasText: 'host:cam' });
    const killed = Date.now();
    process.kill(cam.pid, 'SIGKILL');
    await Promise.all([offline(op).waitFor({ timeout: 5_000 }), offline(viewer).waitFor({ timeout: 5_000 })]);
    const shown = Date.now() - killed;
    console.log(`# node-offline alert shown ${shown} ms after the kill`);
    assert.ok(shown < 1_000, `the alert took ${shown} ms`);
    assert.match(await op.locator('#alerts-badge').textContent(), /^[1-9]\d* alerts?$/);
    assert.equal(await op.locator('#alerts-badge').getAttribute('class'), 'badge bad');

    // A viewer sees it and has nothing to acknowledge it with; the server refuses anyway.
    assert.equal(await offline(viewer).locator('button.ack').count(), 0);
    assert.match(await offline(viewer).textContent(), /not acknowledged/);
    const id = await offline(viewer).getAttribute('data-alert');
    const refused = await viewer.evaluate(async (id) => {
      const s = await (await fetch('/api/session')).json();
      return (await fetch(`/api/alerts/${id}/ack`, { method: 'POST', headers: { 'x-csrf-token': s.csrf } })).status;
    }, id);
    assert.equal(refused, 403);

    // The operator acknowledges it; both pages show who did.
    await offline(op).locator('button.ack').click();
    for (const page of [op, viewer]) {
      await page.locator(`#alerts tr.acked[data-alert="${id}"] .acked`, { hasText: `✓ ${opName}` }).waitFor();
    }
    await op.locator('#alerts-box').screenshot({ path: join(ART, 'alerts.png') });

    // The supervisor starts the node again: the alert is cleared and stays listed.
    const cleared = op.locator(`#alerts tr.cleared[data-alert="${id}"] .alert-state`);
    await cleared.waitFor({ timeout: 20_000 });
    assert.match(await cleared.textContent(), /^cleared /);
    const api = await viewer.evaluate(async () => (await fetch('/api/alerts')).json());
    const a = api.alerts.find((x) => String(x.id) === id);
    assert.equal(a.kind, 'node-offline');
    assert.equal(a.acked_by, opName);
    assert.equal(a.active, false);
    assert.ok(a.cleared_ms >= a.raised_ms);
  } finally {
    await browser.close();
  }
});
