// The node's WireGuard key pair. The private key is generated once with `wg genkey`, kept in the
// agent's state directory with mode 0600, and read only by `wg set ... private-key FILE`; the
// agent itself keeps just the path. Only the public key leaves this module.
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { run } from './exec.ts';

export interface NodeKeys {
  /** Path of the private key file (0600); hand it to `wg set ... private-key`. */
  readonly privateKeyFile: string;
  readonly publicKey: string;
}

const WG_KEY = /^[A-Za-z0-9+/]{43}=$/;

export const ensureNodeKeys = async (stateDir: string): Promise<E.Either<string, NodeKeys>> => {
  const privateKeyFile = join(stateDir, 'wireguard.key');
  try {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    if (!existsSync(privateKeyFile)) {
      const generated = await run(['wg', 'genkey'])();
      if (E.isLeft(generated)) return E.left(`cannot generate the node's WireGuard key: ${generated.left.message}`);
      // 'wx': never overwrite a key another agent process wrote meanwhile.
      writeFileSync(privateKeyFile, generated.right.trim() + '\n', { mode: 0o600, flag: 'wx' });
    }
    if ((statSync(privateKeyFile).mode & 0o077) !== 0) chmodSync(privateKeyFile, 0o600);
    const key = readFileSync(privateKeyFile, 'utf8').trim();
    if (!WG_KEY.test(key)) return E.left(`${privateKeyFile} does not hold a WireGuard private key; remove it to have a new one generated`);
    const pub = await run(['wg', 'pubkey'], { input: key + '\n' })();
    if (E.isLeft(pub)) return E.left(`cannot derive the node's WireGuard public key: ${pub.left.message}`);
    const publicKey = pub.right.trim();
    if (!WG_KEY.test(publicKey)) return E.left('wg pubkey printed something that is not a WireGuard public key');
    return E.right({ privateKeyFile, publicKey });
  } catch (e) {
    return E.left(`cannot keep the node's WireGuard key in ${stateDir}: ${(e as Error).message}`);
  }
};
