// Small DOM helpers the page's modules share.

/** `el('button', {text, class, onclick}, ...children)`: attributes set
 *  unless null, undefined or false (true sets an empty one). */
export function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids) if (k) e.append(k);
  return e;
}

/** A name as one URL path segment. */
export const enc = encodeURIComponent;

/** Replaces `parent`'s children with `kids`, leaving out null and false
 *  (replaceChildren would write them as text). */
export function fill(parent, ...kids) {
  parent.replaceChildren(...kids.filter((k) => k != null && k !== false));
}
