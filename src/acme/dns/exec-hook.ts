import { spawn } from 'node:child_process';
import { dnsServers } from './propagation.js';
import type { DnsProvider } from './provider.js';
import type { DnsServer } from './transport.js';

/** The most bytes of a hook's stderr kept for the log (its last ones). */
const MAX_STDERR = 2048;

/**
 * DNS-01 through a program of the operator's (`--acme-dns exec:PATH`), the way lego's exec
 * provider and acme.sh's hooks work: `PATH present FQDN VALUE` before the CA is asked to
 * validate, `PATH cleanup FQDN VALUE` after, so that any DNS provider's CLI can be used. A
 * non-zero exit or a hook that runs past its time fails the order, with the hook's stderr.
 */
export class ExecHook implements DnsProvider {
  readonly description: string;
  readonly resolvers: DnsServer[];

  constructor(
    private readonly path: string,
    private readonly timeoutMs = 120_000,
  ) {
    this.description = `exec ${path}`;
    this.resolvers = dnsServers();
  }

  present(fqdn: string, value: string): Promise<void> {
    return this.run('present', fqdn, value);
  }

  cleanup(fqdn: string, value: string): Promise<void> {
    return this.run('cleanup', fqdn, value);
  }

  private run(action: 'present' | 'cleanup', fqdn: string, value: string): Promise<void> {
    // arr's own settings (ARR_ACME_KEY, ARR_ACME_TSIG, ...) are not the hook's business; the
    // rest of the environment (a provider's API token) is.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ARR_')));
    return new Promise<void>((resolve, reject) => {
      // Its own process group: a hook that runs too long is killed with whatever it started.
      const child = spawn(this.path, [action, fqdn, value], {
        env,
        detached: true,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (d: string) => {
        stderr = (stderr + d).slice(-MAX_STDERR);
      });
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      }, this.timeoutMs);
      const said = () => {
        const text = stderr.replace(/\s+/g, ' ').trim();
        return text ? `: ${text}` : ' (nothing on stderr)';
      };
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`the DNS hook ${this.path} cannot be run: ${err.message}`));
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        if (timedOut)
          reject(
            new Error(
              `the DNS hook ${this.path} ${action} did not finish within ${Math.round(this.timeoutMs / 1000)} s and was killed${said()}`,
            ),
          );
        else if (code !== 0)
          reject(
            new Error(
              `the DNS hook ${this.path} ${action} ${fqdn} ${code === null ? `was killed by ${signal}` : `exited with code ${code}`}${said()}`,
            ),
          );
        else resolve();
      });
    });
  }
}
