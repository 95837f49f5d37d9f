// HTTPS requests to the HTTP API of an authenticated mesh, trusting the deployment's CA (global
// fetch takes no CA of its own in Node 20).
import { readFileSync } from 'node:fs';
import { request } from 'node:https';

export interface HttpsAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
}

export const httpsGet = (url: string, o: { caFile?: string; ca?: string; headers?: Record<string, string>; method?: string } = {}): Promise<HttpsAnswer> =>
  new Promise((resolve, reject) => {
    const ca = o.ca ?? (o.caFile ? readFileSync(o.caFile, 'utf8') : undefined);
    const req = request(url, { method: o.method ?? 'GET', headers: o.headers ?? {}, ...(ca ? { ca } : {}), timeout: 10000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within 10 s from ${url}`)));
    req.on('error', reject);
    req.end();
  });
