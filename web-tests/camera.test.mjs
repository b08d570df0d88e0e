// The camera in the node panel, on a real V4L2 device: the kernel's vivid
// driver in the VM of scripts/v4l2-vm-tests.sh, which runs a node with its
// controller and web UI there (no camera opened yet) and passes:
//   FW_URL       the guest's web UI, through a forwarded loopback port
//   FW_OPERATOR  "name:password" of an operator
//   FW_VIEWER    "name:password" of a viewer
//   FW_ARTIFACTS where screenshots go
// Every value set here is read back from the device (the node asks the
// driver on each GET of its controls).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { launch, login, until } from './helpers.mjs';

const URL = process.env.FW_URL;
const [opName, opPass] = (process.env.FW_OPERATOR ?? '').split(':');
const [viewName, viewPass] = (process.env.FW_VIEWER ?? '').split(':');
const ART = process.env.FW_ARTIFACTS ?? 'browser-artifacts';
const NODE = 'vm:cam';
const DEVICE = '/dev/video0';

let browser;
before(async () => {
  assert.ok(URL, 'FW_URL is not set: run through scripts/v4l2-vm-tests.sh');
  mkdirSync(ART, { recursive: true });
  browser = await launch();
});
after(async () => { await browser?.close(); });

const api = (path) => new globalThis.URL(path, URL).href;

/** The device's controls as the node reads them from the driver now. */
async function controls(page) {
  const r = await page.request.get(api(`/api/nodes/${NODE}/v4l2`));
  assert.equal(r.status(), 200, await r.text());
  const d = (await r.json()).devices.find((x) => x.path === DEVICE);
  assert.ok(d, `no ${DEVICE} in the node's answer`);
  return d.controls;
}

async function openPanel(page) {
  await page.locator(`#graph g.node[data-node="${NODE}"]`).click();
  await page.locator(`#node-v4l2 .device[data-device="${DEVICE}"] .ctl`).first().waitFor();
  return (name) => page.locator(`#node-v4l2 .device[data-device="${DEVICE}"] .ctl[data-control="${name}"]`);
}

test('an operator opens the camera and sets its controls, read back from the device', async () => {
  const page = await login(browser, URL, opName, opPass);
  let ctl = await openPanel(page);
  assert.match(await page.locator(`#node-v4l2 .device[data-device="${DEVICE}"] h4`).textContent(), /vivid/i);

  // Open: the controller wants the source, the node serves the camera.
  await page.locator(`#node-v4l2 .device[data-device="${DEVICE}"] button.open-camera-btn`).click();
  await page.locator('#camera-result', { hasText: `cam-video0 is wanted on ${NODE}` }).waitFor();
  const stream = page.locator(`#graph g.node[data-node="${NODE}"] g.stream[data-stream="cam-video0"]`);
  await stream.waitFor({ timeout: 30_000 });

  // One control of each kind the page draws, as the driver describes them.
  const all = await controls(page);
  const writable = all.filter((c) => !c.read_only && !c.inactive);
  const slider = writable.find((c) => c.name === 'Brightness');
  const toggle = writable.find((c) => c.widget === 'toggle');
  const menu = writable.find((c) => c.widget === 'menu' && c.type === 'menu' && c.menu.length > 1);
  // Not one of vivid's Disconnect or error-injecting buttons.
  const button = writable.find((c) => c.widget === 'button' && !/disconnect|inject/i.test(c.name));
  assert.ok(slider && toggle && menu && button, `vivid lacks a control kind: ${all.map((c) => `${c.name}/${c.widget}`)}`);
  assert.equal(slider.widget, 'slider');
  assert.equal(await ctl(slider.name).locator('input[type=range]').count(), 1);
  assert.equal(await ctl(toggle.name).locator('input[type=checkbox]').count(), 1);
  assert.deepEqual(await ctl(menu.name).locator('select option').allTextContents(), menu.menu.map((m) => m.name));
  assert.equal(await ctl(button.name).locator('button').count(), 1);
  const drawn = ['slider', 'toggle', 'menu', 'button'];
  const readOnly = all.filter((x) => x.read_only && drawn.includes(x.widget));
  assert.ok(readOnly.length > 0, 'vivid has no read-only control the page draws');
  for (const c of readOnly) {
    assert.ok(await ctl(c.name).locator('input, select, button').first().isDisabled(), `read-only ${c.name} is editable`);
  }

  // Changed in the page: the device has the new values.
  const bright = slider.value === slider.max ? slider.min : slider.max;
  const flipped = toggle.value ? 0 : 1;
  const other = menu.menu.find((m) => m.index !== menu.value).index;
  await ctl(slider.name).locator('input').fill(String(bright));
  await ctl(toggle.name).locator('input').setChecked(Boolean(flipped));
  await ctl(menu.name).locator('select').selectOption(String(other));
  const buttonPressed = page.waitForResponse((r) => r.url().endsWith('/v4l2') && r.request().method() === 'POST'
    && r.request().postDataJSON().values[0].id === button.id);
  await ctl(button.name).locator('button').click();
  assert.equal((await buttonPressed).status(), 200, 'pressing the button control failed');
  await until('the device does not have the values set in the page', async () => {
    const now = await controls(page);
    const v = (c) => now.find((x) => x.id === c.id).value;
    return (v(slider) === bright && v(toggle) === flipped && v(menu) === other) || now.map((c) => [c.name, c.value]);
  });
  await ctl(slider.name).locator('output', { hasText: String(bright) }).waitFor();

  // Opened anew, the panel shows what the device has.
  await page.reload();
  await page.locator('#conn.on').waitFor();
  ctl = await openPanel(page);
  assert.equal(await ctl(slider.name).locator('input').inputValue(), String(bright));
  assert.equal(await ctl(toggle.name).locator('input').isChecked(), Boolean(flipped));
  assert.equal(await ctl(menu.name).locator('select').inputValue(), String(other));
  await page.locator('#node-v4l2').screenshot({ path: join(ART, 'v4l2-controls.png') });

  // Put the brightness back, so the next test sees the driver's default.
  await ctl(slider.name).locator('input').fill(String(slider.value));
  await until('brightness not restored', async () =>
    (await controls(page)).find((x) => x.id === slider.id).value === slider.value);
  await page.context().close();
});

test('a viewer sees the camera and its controls but can change nothing', async () => {
  const page = await login(browser, URL, viewName, viewPass);
  const ctl = await openPanel(page);
  await ctl('Brightness').waitFor();
  assert.equal(await page.locator('#node-v4l2 button.open-camera-btn').count(), 0, 'a viewer can open a camera');
  const inputs = await page.locator('#node-v4l2 .ctl input, #node-v4l2 .ctl select, #node-v4l2 .ctl button').all();
  assert.ok(inputs.length > 4, `only ${inputs.length} controls drawn`);
  for (const el of inputs) assert.ok(await el.isDisabled(), 'a control is enabled for a viewer');
  // The server refuses the write anyway, and the device keeps its value.
  const before = (await controls(page)).find((c) => c.name === 'Brightness');
  const session = await (await page.request.get(api('/api/session'))).json();
  const r = await page.request.post(api(`/api/nodes/${NODE}/v4l2`), {
    headers: { 'content-type': 'application/json', 'x-csrf-token': session.csrf },
    data: JSON.stringify({ device: DEVICE, values: [{ id: before.id, value: before.max === before.value ? before.min : before.max }] }),
  });
  assert.equal(r.status(), 403, await r.text());
  assert.equal((await controls(page)).find((c) => c.id === before.id).value, before.value);
  await page.context().close();
});
