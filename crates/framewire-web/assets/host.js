// The host this page's controller runs on, when `framewire up` supervises
// its nodes (docs/operations.md): each node's state, process, uptime,
// restarts and how it last ended, from GET /api/host every 2 s. Hidden
// when the controller's node is not supervised.

function fmtUptime(s) {
  if (s == null) return '-';
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  return d ? `${d} d ${h} h` : h ? `${h} h ${m} min` : m ? `${m} min ${Math.floor(s) % 60} s` : `${Math.floor(s)} s`;
}

/** Starts polling; `get()` answers GET /api/host, `el` makes elements. */
export function startHostView(get, el) {
  const box = document.querySelector('#host');
  const body = document.querySelector('#host-nodes tbody');
  const caption = document.querySelector('#host-caption');
  const poll = async () => {
    let h = null;
    try { h = await get(); } catch { /* shown as it was; tried again */ }
    if (h && h.supervised) {
      box.hidden = false;
      caption.textContent = `${h.host} · supervisor pid ${h.pid}${h.running ? '' : ' · not running'}`;
      body.replaceChildren(...(h.nodes ?? []).map((n) => el('tr', { class: `host-${n.state}`, 'data-node': n.name },
        el('td', { text: n.name }), el('td', { class: 'host-state', text: n.state }), el('td', { text: n.pid ?? '-' }),
        el('td', { text: fmtUptime(n.uptime_s) }), el('td', { text: String(n.restarts) }),
        el('td', { text: n.reason ?? n.last_exit ?? '' }))));
    } else if (h) {
      box.hidden = true;
    }
    setTimeout(poll, h && !h.supervised ? 10_000 : 2_000);
  };
  poll();
}
