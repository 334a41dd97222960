import acme from 'acme-client';

/** A request to the CA that got no answer at all (refused, reset, timed out, no route, no name). */
export class CaUnreachable extends Error {
  constructor(readonly detail: string) {
    super(`the CA cannot be reached (${detail})`);
  }
}

interface NetworkFailure {
  config?: { retryAttempt?: number };
  response?: unknown;
  code?: string;
  message?: string;
}

let installed = false;

/**
 * Turns a request to the CA that got no answer into a CaUnreachable once acme-client has no
 * retry left for it. acme-client's own response interceptor reads `response.config` of such an
 * error once its retries are spent, and throws "Cannot read properties of undefined (reading
 * 'config')" instead of the network error; an error without `config` it passes on as it is. So
 * this handler goes first in the chain (axios's `handlers` array is public), and leaves alone
 * what acme-client still retries.
 */
export function reportUnreachableCa(): void {
  if (installed) return;
  installed = true;
  const handlers = acme.axios.interceptors.response.handlers;
  if (!handlers) return;
  handlers.unshift({
    fulfilled: (response) => response,
    rejected: (error: NetworkFailure) => {
      if (!error || error.response !== undefined || !error.config) return Promise.reject(error);
      const settings = (acme.axios.defaults as { acmeSettings?: { retryMaxAttempts?: number } }).acmeSettings;
      const spent = (error.config.retryAttempt ?? 0) >= (settings?.retryMaxAttempts ?? 0);
      // acme-client retries neither a timeout nor anything once its attempts are spent.
      if (!spent && error.code !== 'ECONNABORTED') return Promise.reject(error);
      return Promise.reject(new CaUnreachable(error.message || error.code || 'no answer'));
    },
    synchronous: false,
    runWhen: null,
  });
}
