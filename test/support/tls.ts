import { connect } from 'node:tls';

/** The subject CN of the certificate served at 127.0.0.1:port for an SNI name (or none). */
export function certificateFor(port: number, servername?: string, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port, servername, rejectUnauthorized: false }, () => {
      const cn = s.getPeerCertificate().subject?.CN;
      s.destroy();
      resolve(String(cn));
    });
    s.on('error', reject);
  });
}
