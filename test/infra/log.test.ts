// Nothing logged is lost however the process ends: infra/log.ts writes stderr through a
// synchronous pino destination. A child writes far more than a pipe holds (64 KiB) while this
// process does not read, then ends at once: by exitWhenFlushed, process.exit, an uncaught
// exception, SIGKILL. Every line must arrive, whole and in order.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';
import { suite } from '../lib/harness.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const WRITER = path.join(ROOT, 'test/fixtures/logging/writer.ts');
const LINES = 3000; // about 700 KB: ten pipes' worth

const run = (how: string) =>
  new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WRITER, String(LINES), how], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NSM_LOG_LEVEL: 'info' } });
    const chunks: Buffer[] = [];
    // A slow reader: the pipe fills and the writer has to wait for it.
    child.stderr.pause();
    child.stderr.on('data', (c: Buffer) => chunks.push(c));
    setTimeout(() => child.stderr.resume(), 500);
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stderr: Buffer.concat(chunks).toString('utf8') }));
  });

const s = suite('logs survive the end of the process');

for (const [how, expect] of [
  ['exitWhenFlushed', { code: 0 }],
  ['exit', { code: 0 }],
  ['throw', { code: 1 }],
  ['sigkill', { signal: 'SIGKILL' }],
] as const) {
  s(`${how}: every line arrives, whole and in order`, async () => {
    const r = await run(how);
    if ('code' in expect) assert.is(r.code, expect.code, r.stderr.slice(-500));
    else assert.is(r.signal, expect.signal);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('{"level"'));
    assert.is(lines.length, LINES, `lines that arrived (of ${LINES})`);
    const order = lines.map((l) => (JSON.parse(l) as { i: number }).i);
    assert.ok(order.every((n, k) => n === k), 'in order, none torn');
  });
}

s.run();
