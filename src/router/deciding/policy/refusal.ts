/** Why `arr_policy_refusals_total` counts a refusal. */
export type RefusalReason = 'ip' | 'rate' | 'auth' | 'forward_auth' | 'body_size';

/**
 * A request an edge policy refuses: the status, a sentence the client can act on, headers
 * (WWW-Authenticate, Retry-After...) and, for an auth service's own answer, its body.
 */
export interface PolicyRefusal {
  status: number;
  message: string;
  reason: RefusalReason;
  headers?: Record<string, string>;
  /** The body to send as it is (forward auth): then `message` is for the log only. */
  body?: Buffer;
}
