/**
 * The host name a request is for: the Host header lower-cased, without its port and without a
 * trailing dot. Undefined when there is no usable Host header (the request gets a 400).
 */
export function hostName(header: string | undefined): string | undefined {
  if (!header) return undefined;
  let end = header.length;
  if (header.charCodeAt(0) === 91 /* [ */) {
    // An IPv6 literal: keep the brackets, drop what follows them.
    const close = header.indexOf(']');
    if (close < 0) return undefined;
    end = close + 1;
    if (end < header.length && header.charCodeAt(end) !== 58 /* : */) return undefined;
  } else {
    const colon = header.indexOf(':');
    if (colon >= 0) end = colon;
  }
  if (end > 0 && header.charCodeAt(end - 1) === 46 /* . */) end--;
  if (end === 0) return undefined;
  const name = header.slice(0, end).toLowerCase();
  return VALID_HOST.test(name) ? name : undefined;
}

// Letters, digits, '-', '_', '.', and the brackets and colons of an IPv6 literal; anything
// else (spaces, control characters, non-ASCII) cannot name an app.
const VALID_HOST = /^(?:[a-z0-9_.-]{1,253}|\[[0-9a-f:.]+\])$/;
