// Changes to the wanted graph from the page: read it with its version,
// change it, write it back with If-Match, and read again if someone else
// changed it meanwhile (412). The controller makes the change real.

/**
 * `mutate(w)` changes the wanted graph `w` in place and returns false when
 * there is nothing to write. `csrf` is the session's CSRF token (or null).
 */
export async function updateWanted(mutate, csrf) {
  for (let attempt = 0; attempt < 3; attempt++) {
    const r = await fetch('/api/wanted', { headers: { accept: 'application/json' }, credentials: 'same-origin' });
    if (!r.ok) throw new Error(`the wanted graph: ${r.status}`);
    const etag = r.headers.get('etag');
    const w = await r.json();
    if (mutate(w) === false) return;
    const headers = { 'content-type': 'application/json' };
    if (etag) headers['if-match'] = etag;
    if (csrf) headers['x-csrf-token'] = csrf;
    const p = await fetch('/api/wanted', { method: 'PUT', headers, body: JSON.stringify(w), credentials: 'same-origin' });
    if (p.status === 412) continue; // changed meanwhile: read it again
    const data = await p.json().catch(() => ({}));
    if (!p.ok) throw new Error(data.refusals?.map((x) => x.reason).join('; ') || data.error || `${p.status}`);
    return;
  }
  throw new Error('the wanted graph keeps changing; try again');
}
