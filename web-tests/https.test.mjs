// The page over HTTPS: run by `cargo test -p framewire --test browser
// browser_https`, which starts a controller node (open mode, loopback)
// serving its web UI with a certificate of a deployment CA made by
// `framewire cert`, and passes FW_URL (https://…), FW_CA_SPKI (the
// certificate's SPKI hash, which Chromium is told to trust), CHROMIUM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

test('the page, its live graph (wss) and a preview work over HTTPS', async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      // Trust this one certificate, as a browser that imported the CA would.
      `--ignore-certificate-errors-spki-list=${process.env.FW_CA_SPKI}`],
  });
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(20_000);
    const failed = [];
    page.on('requestfailed', (r) => failed.push(`${r.url()}: ${r.failure()?.errorText}`));
    await page.goto(process.env.FW_URL);
    assert.equal(await page.evaluate(() => location.protocol), 'https:');
    assert.equal(await page.evaluate(() => window.isSecureContext), true);
    await page.locator('#conn.on').waitFor();
    await page.locator('#graph g.node[data-node="tls:cam"] rect').click();
    await page.locator('#node-head button.preview-btn[data-stream="bars"]').click();
    const canvas = '.preview[data-node="tls:cam"][data-stream="bars"] canvas';
    await page.waitForFunction((sel) => Number(document.querySelector(sel)?.dataset.sequence ?? -1) >= 10, canvas);
    assert.deepEqual(failed, []);
  } finally {
    await browser.close();
  }
});
