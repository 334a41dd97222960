import type { Agent } from 'undici';
import type { App, EdgeSpec, RedirectSpec } from '../../../registry/types.js';
import type { DownstreamRequest } from '../../carrying/downstream.js';
import { BasicAuth, type Verify } from './basic-auth.js';
import { ForwardAuth, forwardAuthAgent } from './forward-auth.js';
import { HeaderEditor } from './header-edits.js';
import { IpRules } from './ip-rules.js';
import type { PolicyRefusal } from './refusal.js';
import { TokenBuckets } from './token-buckets.js';

/** What a request that passed the access policies carries to the instance. */
export interface Passed {
  /** Fields to set on the request ([name, value, ...], lower-case): X-Forwarded-User, forward auth's. */
  extra: string[] | undefined;
}

export const PASSED: Passed = { extra: undefined };

/** Any verdict of the access policies. */
export type Verdict = Passed | PolicyRefusal;

export function isRefusal(v: Verdict): v is PolicyRefusal {
  return 'status' in v;
}

/**
 * One app's edge policies, compiled from its document once (EdgePolicies): the matchers, the
 * buckets and caches that live across requests, and the header editors.
 */
export class EdgePolicy {
  readonly ip: IpRules | undefined;
  readonly rate: TokenBuckets | undefined;
  readonly basic: BasicAuth | undefined;
  readonly forward: ForwardAuth | undefined;
  /** Edits of the request; with basic auth, Authorization is removed too (the instance never sees the password). */
  readonly request: HeaderEditor | undefined;
  readonly response: HeaderEditor | undefined;
  readonly compress: boolean;
  /** -1: no limit. */
  readonly maxBodySize: number;
  readonly redirect: RedirectSpec | undefined;

  constructor(spec: EdgeSpec, deps: { agent: () => Agent; verify?: Verify }) {
    const a = spec.access;
    this.ip = a?.allow || a?.deny ? new IpRules(a.allow, a.deny) : undefined;
    this.rate = a?.rateLimit ? new TokenBuckets(a.rateLimit) : undefined;
    this.basic = a?.basicAuth ? new BasicAuth(a.basicAuth.realm, a.basicAuth.users, deps.verify) : undefined;
    this.forward = a?.forwardAuth
      ? new ForwardAuth(a.forwardAuth.url, a.forwardAuth.responseHeaders, deps.agent())
      : undefined;
    const req = spec.headers?.request;
    this.request =
      req || this.basic ? new HeaderEditor(req ?? {}, this.basic ? ['authorization'] : []) : undefined;
    this.response = spec.headers?.response ? new HeaderEditor(spec.headers.response) : undefined;
    this.compress = spec.compress === true;
    this.maxBodySize = spec.maxBodySize ?? -1;
    this.redirect = spec.redirect;
  }

  /**
   * The access policies, in their order: IP rules, rate limit, basic auth, forward auth, then
   * the declared body size. Synchronous unless a password must be verified or an auth service
   * asked.
   */
  admit(req: DownstreamRequest, address: string, secure: boolean): Verdict | Promise<Verdict> {
    if (this.ip && !this.ip.admits(address))
      return { status: 403, message: 'this address may not reach this application', reason: 'ip' };
    if (this.rate) {
      const wait = this.rate.take(address);
      if (wait > 0)
        return {
          status: 429,
          message: 'too many requests; slow down',
          reason: 'rate',
          headers: { 'retry-after': String(wait) },
        };
    }
    if (this.basic) {
      const who = this.basic.check(req.headers.authorization, address);
      if (who instanceof Promise)
        return who.then((w) => ('user' in w ? this.afterBasic(req, w.user, secure) : w));
      if (!('user' in who)) return who;
      return this.afterBasic(req, who.user, secure);
    }
    return this.afterBasic(req, undefined, secure);
  }

  private afterBasic(
    req: DownstreamRequest,
    user: string | undefined,
    secure: boolean,
  ): Verdict | Promise<Verdict> {
    const extra = user === undefined ? undefined : ['x-forwarded-user', user];
    if (this.forward)
      return this.forward.check(req, secure).then((r) => {
        if (!Array.isArray(r)) return r;
        return this.bodySize(req, extra ? [...extra, ...r] : r.length > 0 ? r : undefined);
      });
    return this.bodySize(req, extra);
  }

  private bodySize(req: DownstreamRequest, extra: string[] | undefined): Verdict {
    if (this.maxBodySize >= 0) {
      const declared = req.headers['content-length'];
      if (declared !== undefined && Number(declared) > this.maxBodySize) return tooLarge(this.maxBodySize);
    }
    return extra === undefined ? PASSED : { extra };
  }
}

export function tooLarge(max: number): PolicyRefusal {
  return {
    status: 413,
    message: `the request body is larger than this application takes (${max} bytes)`,
    reason: 'body_size',
  };
}

/** Where a redirect app sends a request: `to` + its path and query. */
export function redirectLocation(redirect: RedirectSpec, url: string | undefined): string {
  return redirect.to + (url?.startsWith('/') ? url : '/');
}

const COMPILED = Symbol('arr.edge.compiled');
type CompiledSpec = EdgeSpec & { [COMPILED]?: EdgePolicy };

/**
 * The compiled policies of every app, by app document: compiled at the first request after a
 * registry change (one property read per request after that), and carried over to the app's
 * next document when its policies are the same (its rate buckets and verified credentials
 * survive a change of another field or app).
 */
export class EdgePolicies {
  private readonly byApp = new Map<string, { key: string; policy: EdgePolicy }>();
  private agent: Agent | undefined;

  constructor(private readonly verify?: Verify) {}

  of(app: App & { edge: EdgeSpec }): EdgePolicy {
    const spec = app.edge as CompiledSpec;
    const compiled = spec[COMPILED];
    if (compiled !== undefined) return compiled;
    const key = JSON.stringify(spec);
    const prior = this.byApp.get(app.id);
    let policy: EdgePolicy;
    if (prior !== undefined && prior.key === key) policy = prior.policy;
    else {
      policy = new EdgePolicy(spec, { agent: () => this.sharedAgent(), verify: this.verify });
      this.byApp.set(app.id, { key, policy });
    }
    spec[COMPILED] = policy;
    return policy;
  }

  close(): void {
    void this.agent?.close().catch(() => {});
  }

  private sharedAgent(): Agent {
    this.agent ??= forwardAuthAgent();
    return this.agent;
  }
}
