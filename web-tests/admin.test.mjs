// Administration in the page against `framewire demo`: run with
// ui.test.mjs by `cargo test -p framewire --test browser browser_ui`
// (FW_URL, FW_ADMIN, FW_ARTIFACTS, CHROMIUM).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { launch, login } from './helpers.mjs';

const URL = process.env.FW_URL;
const [adminName, adminPass] = (process.env.FW_ADMIN ?? '').split(':');
const ART = process.env.FW_ARTIFACTS ?? '.';

test('an admin changes a user\'s role and password and makes a token that expires', async () => {
  const browser = await launch();
  try {
    const page = await login(browser, URL, adminName, adminPass);
    await page.locator('#admin').waitFor({ state: 'visible' });
    assert.equal(await page.locator(`#users tr[data-user="${adminName}"] select.user-role-select`).isDisabled(), true,
      'an admin can take their own role');
    await page.locator('#user-name').fill('rosa');
    await page.locator('#user-role').selectOption('viewer');
    await page.locator('#user-password').fill('rosa-password');
    await page.locator('#user-form button[type=submit]').click();
    const rosa = page.locator('#users tr[data-user="rosa"][data-role="viewer"]');
    await rosa.waitFor();

    // rosa logs in as a viewer; the admin makes her an operator: her session ends.
    const r = await login(browser, URL, 'rosa', 'rosa-password');
    assert.equal(await r.locator('#wire-form').isVisible(), false);
    await rosa.locator('select.user-role-select').selectOption('operator');
    await page.locator('#users tr[data-user="rosa"][data-role="operator"]').waitFor();
    await page.locator('#admin-result', { hasText: 'rosa is operator now' }).waitFor();
    assert.equal(await r.evaluate(async () => (await fetch('/api/graph')).status), 401, 'her old session still works');

    // A new password: the old one fails, the new one logs her in as an operator.
    await page.locator('#users tr[data-user="rosa"] input.user-new-password').fill('rosa-new-password');
    await page.locator('#users tr[data-user="rosa"] button.set-password').click();
    await page.locator('#admin-result', { hasText: 'rosa has a new password' }).waitFor();
    const status = async (password) => (await fetch(new globalThis.URL('/api/login', URL), {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'rosa', password }),
    })).status;
    assert.equal(await status('rosa-password'), 401);
    const r2 = await login(browser, URL, 'rosa', 'rosa-new-password');
    await r2.locator('#wire-form').waitFor({ state: 'visible' });

    // A token for her that expires in a day.
    await page.locator('#token-user').selectOption('rosa');
    await page.locator('#token-expires').selectOption('86400');
    await page.locator('#token-form button[type=submit]').click();
    await page.locator('#new-token', { hasText: /fw_[0-9a-f]+_[0-9a-f]+/ }).waitFor();
    const tokens = await page.evaluate(async () => (await fetch('/api/tokens')).json());
    const t = tokens.tokens.find((x) => x.user === 'rosa');
    assert.ok(t.expires_ms - t.created_ms > 86_000_000 && t.expires_ms - t.created_ms <= 86_400_000, JSON.stringify(t));
    assert.notEqual(await page.locator(`#tokens tr[data-token="${t.id}"] td`).nth(3).textContent(), 'never');
    await page.locator('#admin').screenshot({ path: join(ART, 'admin.png') });

    // Cleaned up: the demo's users are as they were.
    await page.locator('#users tr[data-user="rosa"] button.remove-user').click();
    await page.locator('#users tr[data-user="rosa"]').waitFor({ state: 'detached' });
  } finally {
    await browser.close();
  }
});
