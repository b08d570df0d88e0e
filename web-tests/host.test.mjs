// The page's host view when `framewire up` supervises the controller's
// node: run by `cargo test -p framewire --test browser browser_host_view`,
// which starts `framewire up` with the controller (open mode, loopback)
// and a node that cannot start, and passes FW_URL, FW_ARTIFACTS, CHROMIUM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

test('the host view lists the supervised nodes, the failed one with its reason', async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.setDefaultTimeout(20_000);
    await page.goto(process.env.FW_URL);
    await page.locator('#app').waitFor({ state: 'visible' });
    await page.locator('#host').waitFor({ state: 'visible' });
    const main = page.locator('#host-nodes tr[data-node="main"]');
    await main.locator('td.host-state', { hasText: 'running' }).waitFor();
    const broken = page.locator('#host-nodes tr[data-node="broken"]');
    await broken.locator('td.host-state', { hasText: 'failed' }).waitFor();
    const reason = await broken.locator('td').last().textContent();
    assert.match(reason, /ended 2 times .*nope/);
    assert.match(await page.locator('#host-caption').textContent(), /host\.toml · supervisor pid \d+$/);
    await page.locator('#host').screenshot({ path: join(process.env.FW_ARTIFACTS ?? '.', 'host-view.png') });
  } finally {
    await browser.close();
  }
});
