// Administration (admins, when users are configured): users with their
// roles, a new password for one, new users; API tokens with an expiry,
// revoked with a button. Every change ends the changed user's sessions
// and tokens on the server (docs/web.md, "Users and roles").
import { el, enc } from './dom.js';

const $ = (sel) => document.querySelector(sel);
const ROLES = ['viewer', 'operator', 'admin'];
let api = null;
let me = null;

function say(text, error = false) {
  $('#admin-error').textContent = error ? text : '';
  $('#admin-result').textContent = error ? '' : text;
}

async function adminDo(method, path, body, done) {
  say('');
  try {
    const r = await api(method, path, body);
    await loadAdmin(api, me);
    if (done) say(done);
    return r ?? {};
  } catch (e) {
    say(e.message, true);
    return null;
  }
}

function userRow(u) {
  const role = el('select', { class: 'user-role-select', 'aria-label': `role of ${u.name}`, disabled: u.name === me },
    ...ROLES.map((r) => el('option', { value: r, text: r })));
  role.value = u.role;
  role.addEventListener('change', () => adminDo('PUT', `/api/users/${enc(u.name)}`, { role: role.value },
    `${u.name} is ${role.value} now; their sessions and tokens ended`));
  const pw = el('input', { type: 'password', class: 'user-new-password', minlength: 8, placeholder: 'new password', autocomplete: 'new-password', 'aria-label': `new password for ${u.name}` });
  const setPw = el('button', { class: 'set-password', text: 'Set password', onclick: async () => {
    if (pw.value.length < 8) { say('a password has at least 8 characters', true); return; }
    const r = await adminDo('PUT', `/api/users/${enc(u.name)}`, { password: pw.value }, `${u.name} has a new password; their sessions and tokens ended`);
    if (r) pw.value = '';
  } });
  return el('tr', { 'data-user': u.name, 'data-role': u.role },
    el('td', { text: u.name }), el('td', {}, role), el('td', {}, pw, setPw),
    el('td', {}, u.name === me ? null : el('button', { class: 'remove-user', text: 'Remove', onclick: () => adminDo('DELETE', `/api/users/${enc(u.name)}`, null, `${u.name} removed`) })));
}

const when = (ms) => (ms ? new Date(ms).toLocaleString() : 'never');

/** Loads the users and tokens (the first call also wires the forms). */
export async function loadAdmin(callApi, user) {
  const first = api === null;
  api = callApi;
  me = user;
  if (first) bindForms();
  try {
    const [u, t] = await Promise.all([api('GET', '/api/users'), api('GET', '/api/tokens')]);
    $('#users tbody').replaceChildren(...u.users.map(userRow));
    const keep = $('#token-user').value;
    $('#token-user').replaceChildren(...u.users.map((x) => el('option', { value: x.name, text: x.name })));
    if (u.users.some((x) => x.name === keep)) $('#token-user').value = keep;
    $('#tokens tbody').replaceChildren(...t.tokens.map((x) => el('tr', { 'data-token': x.id },
      el('td', { text: x.id }), el('td', { text: x.user }), el('td', { text: when(x.created_ms) }), el('td', { text: when(x.expires_ms) }),
      el('td', {}, el('button', { class: 'revoke', text: 'Revoke', 'aria-label': `revoke token ${x.id} of ${x.user}`, onclick: () => adminDo('DELETE', `/api/tokens/${enc(x.id)}`, null, `token ${x.id} revoked`) })))));
  } catch (e) {
    say(e.message, true);
  }
}

function bindForms() {
  $('#user-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = $('#user-name').value.trim();
    const r = await adminDo('POST', '/api/users', { name, role: $('#user-role').value, password: $('#user-password').value }, `${name} added`);
    if (r) { $('#user-name').value = ''; $('#user-password').value = ''; }
  });
  $('#token-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const expires = Number($('#token-expires').value);
    const r = await adminDo('POST', '/api/tokens', { user: $('#token-user').value, ...(expires ? { expires_in: expires } : {}) });
    if (r) $('#new-token').textContent = `New token (shown once): ${r.token}`;
  });
}
