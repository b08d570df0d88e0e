// Alerts (docs/web.md, "Alerts"): what broke and when, pushed on
// /ws/state as {"type":"alerts"} whenever the list changes; operators
// acknowledge them with POST /api/alerts/{id}/ack. The header's badge
// counts the ones nobody has acknowledged yet.

const KIND = {
  'node-offline': 'node offline',
  'device-lost': 'device lost',
  'edge-congested': 'edge congested',
  'storage-full': 'storage full',
  'child-failed': 'supervised node failed',
};

function when(ms) {
  const d = new Date(ms);
  return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
}

/**
 * Draws the list. `canAct` says whether this user may acknowledge, `ack(id)`
 * sends the acknowledgement, `el` makes elements.
 */
export function showAlerts(m, canAct, ack, el) {
  const open = m.alerts.filter((a) => !a.acked_by);
  const badge = document.querySelector('#alerts-badge');
  badge.textContent = open.length === 1 ? '1 alert' : `${open.length} alerts`;
  badge.className = open.some((a) => a.active) ? 'badge bad' : open.length ? 'badge warn' : 'badge';
  badge.title = open.length ? 'alerts no operator has acknowledged: show them' : 'no unacknowledged alerts';
  document.querySelector('#alerts-empty').hidden = m.alerts.length > 0;
  document.querySelector('#alerts').hidden = m.alerts.length === 0;
  const error = document.querySelector('#alerts-error');
  document.querySelector('#alerts tbody').replaceChildren(...m.alerts.map((a) => {
    const state = a.active ? 'active' : `cleared ${when(a.cleared_ms)}`;
    let acked;
    if (a.acked_by) acked = el('span', { class: 'acked', text: `✓ ${a.acked_by} ${when(a.acked_ms)}` });
    else if (canAct) {
      acked = el('button', {
        class: 'ack', text: 'Acknowledge', 'aria-label': `acknowledge: ${a.message}`,
        onclick: async (ev) => {
          ev.target.disabled = true;
          error.textContent = '';
          try { await ack(a.id); } catch (e) { error.textContent = e.message; ev.target.disabled = false; }
        },
      });
    } else acked = el('span', { class: 'hint', text: 'not acknowledged' });
    return el('tr', { 'data-alert': a.id, 'data-kind': a.kind, class: `${a.active ? 'active' : 'cleared'}${a.acked_by ? ' acked' : ''}` },
      el('td', { text: when(a.raised_ms) }), el('td', { text: KIND[a.kind] ?? a.kind }),
      el('td', { class: 'alert-message', text: a.message }), el('td', { class: 'alert-state', text: state }),
      el('td', {}, acked));
  }));
}

/** The badge scrolls to the list and focuses it. */
export function bindAlertsBadge() {
  document.querySelector('#alerts-badge').addEventListener('click', () => {
    const box = document.querySelector('#alerts-box');
    box.scrollIntoView({ block: 'start' });
    box.focus();
  });
}
