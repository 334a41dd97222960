import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * TSIG (RFC 8945): HMAC signatures of DNS messages with a secret shared with the server, for
 * the dynamic updates of rfc2136.ts. dns-packet does not sign; the few fields are written here.
 */

export interface TsigKey {
  /** The key's name, as the server knows it (lower case, with its trailing dot). */
  name: string;
  /** `hmac-sha256` and the like. */
  algorithm: string;
  secret: Buffer;
}

/** The algorithms of RFC 8945 §6 that arr signs with, and node:crypto's name of each hash. */
const ALGORITHMS: Record<string, string> = {
  'hmac-sha1': 'sha1',
  'hmac-sha224': 'sha224',
  'hmac-sha256': 'sha256',
  'hmac-sha384': 'sha384',
  'hmac-sha512': 'sha512',
};

/** The seconds of clock difference the server may accept (RFC 8945 recommends 300). */
const FUDGE = 300;
const TSIG_TYPE = 250;
const CLASS_ANY = 255;

/** The TSIG errors (RFC 8945 §5.3), in the words the log uses. */
const TSIG_ERRORS: Record<number, string> = {
  16: 'BADSIG (the server has this key with another secret)',
  17: 'BADKEY (the server has no key of this name and algorithm)',
  18: 'BADTIME (the clocks differ by more than 5 minutes)',
  22: 'BADTRUNC',
};

/**
 * `ARR_ACME_TSIG`: `name:algorithm:base64secret`, as BIND's and Knot's key files give them.
 * Throws with a sentence that names what is wrong (never the secret).
 */
export function parseTsigKey(text: string): TsigKey {
  const [name, algorithm, secret, ...rest] = text.trim().split(':');
  const usage = 'must be name:algorithm:base64secret, e.g. arr-key:hmac-sha256:c2VjcmV0...';
  if (!name || !algorithm || !secret || rest.length > 0) throw new Error(usage);
  const alg = algorithm.toLowerCase();
  if (!ALGORITHMS[alg])
    throw new Error(
      `has the algorithm "${algorithm}"; one of ${Object.keys(ALGORITHMS).join(', ')} is needed`,
    );
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(secret)) throw new Error(`has a secret that is not base64; ${usage}`);
  const key = Buffer.from(secret, 'base64');
  if (key.length < 16) throw new Error('has a secret of fewer than 16 bytes');
  return { name: `${name.toLowerCase().replace(/\.$/, '')}.`, algorithm: alg, secret: key };
}

/** A domain name in uncompressed wire form, lower case (the canonical form TSIG signs). */
export function wireName(name: string): Buffer {
  const labels = name.toLowerCase().replace(/\.$/, '').split('.').filter(Boolean);
  return Buffer.concat([
    ...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'ascii')])),
    Buffer.from([0]),
  ]);
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function u48(n: number): Buffer {
  const b = Buffer.alloc(6);
  b.writeUIntBE(n, 0, 6);
  return b;
}

/** The "TSIG variables" of RFC 8945 §4.3.3, signed after the message. */
function variables(key: TsigKey, timeSigned: number, fudge: number, error: number, other: Buffer): Buffer {
  return Buffer.concat([
    wireName(key.name),
    u16(CLASS_ANY),
    Buffer.alloc(4), // TTL 0
    wireName(key.algorithm),
    u48(timeSigned),
    u16(fudge),
    u16(error),
    u16(other.length),
    other,
  ]);
}

function hmac(key: TsigKey, ...parts: Buffer[]): Buffer {
  const h = createHmac(ALGORITHMS[key.algorithm]!, key.secret);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** `message` with a TSIG record appended (its additional count raised), and the MAC it carries. */
export function sign(message: Buffer, key: TsigKey, now = Date.now()): { signed: Buffer; mac: Buffer } {
  const timeSigned = Math.floor(now / 1000);
  const mac = hmac(key, message, variables(key, timeSigned, FUDGE, 0, Buffer.alloc(0)));
  const rdata = Buffer.concat([
    wireName(key.algorithm),
    u48(timeSigned),
    u16(FUDGE),
    u16(mac.length),
    mac,
    message.subarray(0, 2), // original id
    u16(0), // error
    u16(0), // other length
  ]);
  const record = Buffer.concat([
    wireName(key.name),
    u16(TSIG_TYPE),
    u16(CLASS_ANY),
    Buffer.alloc(4),
    u16(rdata.length),
    rdata,
  ]);
  const signed = Buffer.concat([message, record]);
  signed.writeUInt16BE(message.readUInt16BE(10) + 1, 10);
  return { signed, mac };
}

/** Where the name at `offset` ends (a compression pointer ends it too). */
function skipName(buf: Buffer, offset: number): number {
  let at = offset;
  for (;;) {
    if (at >= buf.length) throw new Error('a truncated name');
    const len = buf[at]!;
    if (len === 0) return at + 1;
    if ((len & 0xc0) === 0xc0) return at + 2;
    at += len + 1;
  }
}

/** Where each record of a message begins: the start of the last one, and the end. */
function lastRecordStart(buf: Buffer): number {
  let at = 12;
  for (let i = buf.readUInt16BE(4); i > 0; i--) at = skipName(buf, at) + 4;
  const records = buf.readUInt16BE(6) + buf.readUInt16BE(8) + buf.readUInt16BE(10);
  let start = at;
  for (let i = 0; i < records; i++) {
    start = at;
    at = skipName(buf, at);
    if (at + 10 > buf.length) throw new Error('a truncated record');
    at += 10 + buf.readUInt16BE(at + 8);
  }
  if (at > buf.length) throw new Error('a truncated record');
  return start;
}

/**
 * Checks the TSIG of an answer to a message signed with `requestMac`: undefined when it is
 * signed with `key` and the server reports no TSIG error; else why not, in one sentence.
 */
export function checkAnswer(answer: Buffer, key: TsigKey, requestMac: Buffer): string | undefined {
  try {
    if (answer.readUInt16BE(10) === 0) return 'the answer is not signed';
    const start = lastRecordStart(answer);
    const nameEnd = skipName(answer, start);
    if (answer.readUInt16BE(nameEnd) !== TSIG_TYPE) return 'the answer is not signed';
    const rdata = answer.subarray(nameEnd + 10, nameEnd + 10 + answer.readUInt16BE(nameEnd + 8));
    let at = skipName(rdata, 0);
    const timeSigned = rdata.readUIntBE(at, 6);
    const fudge = rdata.readUInt16BE(at + 6);
    const macSize = rdata.readUInt16BE(at + 8);
    const mac = rdata.subarray(at + 10, at + 10 + macSize);
    at += 10 + macSize;
    const originalId = rdata.subarray(at, at + 2);
    const error = rdata.readUInt16BE(at + 2);
    const other = rdata.subarray(at + 6, at + 6 + rdata.readUInt16BE(at + 4));
    if (error !== 0) return `TSIG error ${TSIG_ERRORS[error] ?? error}`;
    const unsigned = Buffer.from(answer.subarray(0, start));
    originalId.copy(unsigned, 0);
    unsigned.writeUInt16BE(unsigned.readUInt16BE(10) - 1, 10);
    const expected = hmac(
      key,
      u16(requestMac.length),
      requestMac,
      unsigned,
      variables(key, timeSigned, fudge, 0, other),
    );
    if (mac.length !== expected.length || !timingSafeEqual(mac, expected))
      return "the answer's TSIG signature does not verify";
    return undefined;
  } catch {
    return "the answer's TSIG record is malformed";
  }
}
