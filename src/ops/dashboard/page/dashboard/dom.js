// Small DOM helpers. Everything that comes from arr (app names, hosts, output lines) reaches the
// page through textContent only, never as HTML.

export const $ = (id) => document.getElementById(id);

export function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

export function setPill(id, text, kind) {
  const p = $(id);
  p.textContent = text;
  p.className = `pill ${kind}`;
}
