// Alerts in the page, pushed live: run by `cargo test -p framewire --test
// browser browser_alerts`, which starts `framewire up` with a controller
// (users: an operator and a viewer) and the nodes it watches: a
// test-pattern node `host:cam` serving RTSP, restarted 3 s after it ends;
// `host:door`, which takes cam's stream in over RTSP as its camera `door`;
// `host:rec`, archiving its own pattern into FW_ARCHIVE_DIR (a small
// tmpfs); `host:fast`, whose 30 fps stream `fast` leaves it through a
// 40 kbit/s link; and a node that cannot start. It passes FW_URL,
// FW_OPERATOR, FW_VIEWER, FW_ARCHIVE_DIR, FW_ARTIFACTS and CHROMIUM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { launch, login as loginAt, until } from './helpers.mjs';

const URL = process.env.FW_URL;
const [opName, opPass] = (process.env.FW_OPERATOR ?? '').split(':');
const [viewName, viewPass] = (process.env.FW_VIEWER ?? '').split(':');
const ART = process.env.FW_ARTIFACTS ?? '.';
const login = (browser, name, password) => loginAt(browser, URL, name, password);

test('a killed node (and the camera another node took from it) is an alert within a second; an operator acknowledges it, a viewer cannot', async () => {
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
    // host:door's camera is cam's stream over RTSP: it goes with cam.
    const lost = (page) => page.locator('#alerts tr.active[data-kind="device-lost"]', { hasText: 'host:door/door' });
    await until('host:door/door live', async () => (await streamOf(op, 'host:door', 'door'))?.state === 'live', 30_000);
    assert.equal(await lost(op).count(), 0);
    const killed = Date.now();
    process.kill(cam.pid, 'SIGKILL');
    await Promise.all([op, viewer].map((p) => shown(p, 'node-offline', 'host:cam')));
    const offlineAfter = Date.now() - killed;
    console.log(`# node-offline alert shown ${offlineAfter} ms after the kill`);
    assert.ok(offlineAfter < 1_000, `the alert took ${offlineAfter} ms`);
    await Promise.all([op, viewer].map((p) => shown(p, 'device-lost', 'host:door/door')));
    const lostAfter = Date.now() - killed;
    console.log(`# device-lost alert (host:door's RTSP camera) shown ${lostAfter} ms after the kill`);
    assert.ok(lostAfter < 1_000, `the device-lost alert took ${lostAfter} ms`);
    assert.match(await lost(op).locator('.alert-message').textContent(), /stream host:door\/door is (interrupted|failed)/);
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
    // cam back, door's camera is back: that alert clears too.
    await op.locator('#alerts tr.cleared[data-kind="device-lost"]', { hasText: 'host:door/door' }).waitFor({ timeout: 20_000 });
  } finally {
    await browser.close();
  }
});

test('a full disk and a congested edge are alerts as soon as they show; acknowledged, then cleared', async () => {
  const browser = await launch();
  try {
    const op = await login(browser, opName, opPass);
    const viewer = await login(browser, viewName, viewPass);
    const active = (page, kind, text) => page.locator(`#alerts tr.active[data-kind="${kind}"]`, { hasText: text });

    // The archive records; then its disk fills up.
    await until('host:rec recording', async () => /\[recording/.test(archiveOf(await streamOf(op, 'host:rec', 'rec'))), 30_000);
    const filler = join(process.env.FW_ARCHIVE_DIR, 'filler');
    fill(filler);
    const filled = Date.now();
    const full = (page) => active(page, 'storage-full', 'host:rec/rec');
    await Promise.all([op, viewer].map((p) => shown(p, 'storage-full', 'host:rec/rec')));
    const fullAfter = Date.now() - filled;
    const raised = (await op.evaluate(async () => (await fetch('/api/alerts')).json())).alerts.find((a) => a.kind === 'storage-full');
    console.log(`# storage-full alert shown ${fullAfter} ms after the disk filled (raised after ${raised.raised_ms - filled} ms: ${raised.message})`);
    assert.ok(fullAfter < 1_000, `the storage-full alert took ${fullAfter} ms`);
    assert.match(await full(op).locator('.alert-message').textContent(), /archive of host:rec\/rec cannot record: .*(free|space|full)/i);
    await full(op).locator('button.ack').click();
    await op.locator('#alerts tr.acked[data-kind="storage-full"] .acked', { hasText: `✓ ${opName}` }).waitFor();
    // Space again: recording resumes and the alert clears.
    unlinkSync(filler);
    await op.locator('#alerts tr.cleared[data-kind="storage-full"]', { hasText: 'host:rec/rec' }).waitFor({ timeout: 10_000 });

    // An edge through a link slower than its stream drops most frames.
    const wired = Date.now();
    const status = await op.evaluate(async () => {
      const s = await (await fetch('/api/session')).json();
      const r = await fetch('/api/edges', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': s.csrf },
        body: JSON.stringify({ from: 'host:fast', stream: 'fast', to: 'host:door', local_name: 'fast', mode: 'low-latency', priority: 128 }),
      });
      return r.status;
    });
    assert.ok(status < 300, `wiring answered ${status}`);
    const congested = (page) => active(page, 'edge-congested', 'fast');
    try {
      await Promise.all([op, viewer].map((p) => shown(p, 'edge-congested', 'fast', 10_000)));
    } catch (e) {
      const g = await op.evaluate(async () => (await fetch('/api/graph')).json());
      throw new Error(`no edge-congested alert: ${e.message}; edges: ${JSON.stringify(g.edges)}`);
    }
    const congestedAfter = Date.now() - wired;
    // The share of frames dropped is judged over status reports: a node
    // whose outputs begin dropping reports at once (then at most every
    // 300 ms), not at its next 1 s report.
    console.log(`# edge-congested alert shown ${congestedAfter} ms after the edge was wired`);
    assert.ok(congestedAfter < 1_000, `the edge-congested alert took ${congestedAfter} ms`);
    assert.match(await congested(op).locator('.alert-message').textContent(), /is congested: /);
    assert.equal(await congested(viewer).locator('button.ack').count(), 0);
    await congested(op).locator('button.ack').click();
    await op.locator('#alerts tr.acked[data-kind="edge-congested"] .acked', { hasText: `✓ ${opName}` }).waitFor();
    // Unwired, the edge is gone and so is its alert.
    const id = 'host:door/fast';
    assert.ok((await op.evaluate(async () => (await fetch('/api/wanted')).json())).edge?.some((e) => e.from === 'host:fast'));
    await op.evaluate(async (id) => {
      const s = await (await fetch('/api/session')).json();
      await fetch(`/api/edges/${encodeURIComponent(id)}`, { method: 'DELETE', headers: { 'x-csrf-token': s.csrf } });
    }, id);
    await op.locator('#alerts tr.cleared[data-kind="edge-congested"]', { hasText: 'fast' }).waitFor({ timeout: 10_000 });
  } finally {
    await browser.close();
  }
});

/** Waits until an active alert of `kind` about `text` shows in `page`,
 *  looking every 10 ms (a locator's wait looks less often as it goes on,
 *  up to every 500 ms: too coarse to time an alert). */
function shown(page, kind, text, timeout = 5_000) {
  return page.waitForFunction(([kind, text]) => [...document.querySelectorAll(`#alerts tr.active[data-kind="${kind}"]`)]
    .some((tr) => tr.textContent.includes(text) && tr.getClientRects().length > 0), [kind, text], { polling: 10, timeout });
}

/** The stream `stream` of `node` in the controller's current graph. */
async function streamOf(page, node, stream) {
  const g = await page.evaluate(async () => (await fetch('/api/graph')).json());
  return g.nodes?.find((n) => n.name === node)?.streams?.find((s) => s.name === stream);
}

/** The label of a stream's archive output ('' when none). */
function archiveOf(stream) {
  return stream?.outputs?.find((o) => o.peer.startsWith('sink:archive'))?.peer ?? '';
}

/** Writes `path` until its file system is full. */
function fill(path) {
  const fd = openSync(path, 'w');
  try {
    for (const size of [1 << 20, 4096, 1]) {
      const chunk = Buffer.alloc(size, 0x5a);
      try {
        for (;;) writeSync(fd, chunk);
      } catch (e) {
        if (e.code !== 'ENOSPC') throw e;
      }
    }
  } finally {
    closeSync(fd);
  }
}
