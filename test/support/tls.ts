import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A self-signed certificate for localhost / 127.0.0.1, made once for the calling scope (beforeAll) and removed after it. */
export function useSelfSignedCert(): { readonly cert: Buffer; readonly key: Buffer } {
  const pair = { cert: Buffer.alloc(0), key: Buffer.alloc(0) };
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'gearman-tls-'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-subj',
        '/CN=localhost',
        '-days',
        '1',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore', timeout: 20_000 },
    );
    pair.cert = readFileSync(join(dir, 'cert.pem'));
    pair.key = readFileSync(join(dir, 'key.pem'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return pair;
}
