// Access to arr's API: the token, asked once and kept in this tab's session storage.

import { $, setPill } from './dom.js';

const TOKEN_KEY = 'arr-admin-token';

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function headers() {
  const t = token();
  return t ? { authorization: `Bearer ${t}` } : {};
}

export class Unauthorized extends Error {}

export async function api(path) {
  const res = await fetch(path, { headers: headers(), cache: 'no-store' });
  if (res.status === 401) throw new Unauthorized();
  if (!res.ok) throw new Error(`${path}: ${res.status}`);
  return res.json();
}

export function askToken(refused) {
  $('main').hidden = true;
  $('login').hidden = false;
  $('login-error').hidden = !refused;
  setPill('live', 'token needed', 'warn');
  $('login-token').focus();
}
