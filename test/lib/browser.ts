// Headless Chromium for the dashboard's tests and bench: Debian's chromium driven by
// playwright-core (which downloads no browser). A fresh profile per launch, removed on close.
// HTTPS to an authenticated mesh: Chromium trusts exactly the server's key (its SPKI pin, passed
// with --ignore-certificate-errors-spki-list), after the certificate was verified here against
// the deployment's CA and for the address the test uses (verifiedSpkiPin).
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.NSM_CHROMIUM ?? '/usr/bin/chromium';

/** The flags that work on these machines (no sandbox as root, no GPU, nothing phoning home). */
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/**
 * The base64 SHA-256 of the certificate's SubjectPublicKeyInfo, after checking that the CA signed
 * it, that it is valid now and that it names `host`: the pin then trusts exactly what a client
 * trusting the CA would have trusted, and nothing else.
 */
export const verifiedSpkiPin = (certFile: string, caFile: string, host: string): string => {
  const cert = new X509Certificate(readFileSync(certFile));
  const ca = new X509Certificate(readFileSync(caFile));
  if (!cert.verify(ca.publicKey)) throw new Error(`${certFile} is not signed by ${caFile}`);
  const now = Date.now();
  if (Date.parse(cert.validFrom) > now || Date.parse(cert.validTo) < now) throw new Error(`${certFile} is not valid now (${cert.validFrom} - ${cert.validTo})`);
  const named = /^[\d.]+$/.test(host) ? cert.checkIP(host) : cert.checkHost(host);
  if (!named) throw new Error(`${certFile} does not name ${host} (${cert.subjectAltName})`);
  return createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
};

export interface Chromium {
  readonly context: BrowserContext;
  /** A new tab (its own sessionStorage: a fresh sign-in). */
  page(): Promise<Page>;
  /** A screenshot of the page into the directory given at launch; its path. */
  screenshot(page: Page, name: string): Promise<string>;
  close(): Promise<void>;
}

export const launchChromium = async (o: { screenshots: string; spkiPins?: readonly string[]; viewport?: { width: number; height: number } }): Promise<Chromium> => {
  if (!existsSync(CHROMIUM)) throw new Error(`no chromium at ${CHROMIUM}: install it with apt-get install --no-install-recommends chromium (or set NSM_CHROMIUM)`);
  const profile = mkdtempSync(join(tmpdir(), 'nsm-chromium-'));
  mkdirSync(o.screenshots, { recursive: true });
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [...CHROMIUM_ARGS, ...(o.spkiPins?.length ? [`--ignore-certificate-errors-spki-list=${o.spkiPins.join(',')}`] : [])],
      viewport: o.viewport ?? { width: 1280, height: 800 },
      timeout: 60_000,
    });
  } catch (e) {
    rmSync(profile, { recursive: true, force: true });
    throw e;
  }
  return {
    context,
    page: () => context.newPage(),
    screenshot: async (page, name) => {
      const file = join(o.screenshots, `${name}.png`);
      await page.screenshot({ path: file });
      return file;
    },
    close: async () => {
      await context.close().catch(() => undefined);
      rmSync(profile, { recursive: true, force: true });
    },
  };
};
