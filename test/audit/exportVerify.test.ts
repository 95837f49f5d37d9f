// Export a real store to JSON Lines, verify the copy offline, then tamper with copies: one event
// altered, one removed, two commits reordered; verify names each at its position, and the CLI
// exits non-zero naming the first broken link.
import { spawnSync } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { jetStreamSealStore } from '../../infra/nats/seals.ts';
import { exportRange, verifyExportFile } from '../../src/audit/audit.ts';
import type { Finding } from '../../src/audit/verify.ts';
import { SCENARIO_NODES, runAuditScenario, waitForQuietLog } from '../lib/auditScenario.ts';
import { suite } from '../lib/harness.ts';
import { startTestMesh, type TestMesh } from '../lib/mesh.ts';
import { nsmEnv } from '../lib/nsmProcess.ts';

const NSM = fileURLToPath(new URL('../../bin/nsm', import.meta.url));

interface Ctx {
  mesh?: TestMesh;
  dir?: string;
  file?: string;
  last?: bigint;
  midTime?: Date;
}

type Line = { type: string; position?: string; index?: number; count?: number; stream?: string; event?: { data: Record<string, unknown>; version: number } };
const readLines = (f: string): Line[] => readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Line);
const writeLines = (f: string, lines: readonly Line[]) => writeFileSync(f, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
const kinds = (fs: readonly Finding[]) => fs.map((f) => `${f.kind}@${f.position ?? '-'}`);

const s = suite<Ctx>('audit export and verify of a real store', {});

s.before(async (ctx) => {
  ctx.mesh = await startTestMesh({ nodes: SCENARIO_NODES, audit: { sealer: { maxEntries: 8, maxDelayMs: 100 } } });
  ctx.dir = mkdtempSync(join(tmpdir(), 'nsm-audit-'));
  const store = ctx.mesh.cp!.store;
  await runAuditScenario(ctx.mesh);
  ctx.midTime = new Date();
  await new Promise((r) => setTimeout(r, 20));
  const c = await ctx.mesh.client('late-operator');
  const r = await c.send('service.register', { name: 'late-service' });
  if (E.isLeft(r)) throw new Error(r.left.message);
  ctx.last = await waitForQuietLog(store);
  const sealer = ctx.mesh.cp!.audit.sealer()!;
  for (let i = 0; i < 200 && sealer.sealedUpTo() < ctx.last; i++) await new Promise((r) => setTimeout(r, 25));
  assert.is(sealer.sealedUpTo(), ctx.last, 'the sealer caught up with the log');
  ctx.file = join(ctx.dir, 'export.jsonl');
  const out = createWriteStream(ctx.file);
  const ex = await exportRange(store, await jetStreamSealStore(await ctx.mesh.nats.connect(), ctx.mesh.domain), { domain: ctx.mesh.domain, out });
  out.end();
  await once(out, 'finish');
  if (E.isLeft(ex)) throw new Error(ex.left);
});
s.after(async (ctx) => {
  await ctx.mesh?.stop();
  if (ctx.dir) rmSync(ctx.dir, { recursive: true, force: true });
});

s('the export holds every commit, line shapes as documented, and verifies offline', async (ctx) => {
  const lines = readLines(ctx.file!);
  assert.is(lines[0]!.type, 'nsm-audit-export');
  assert.is(lines[lines.length - 1]!.type, 'end');
  const events = lines.filter((l) => l.type === 'event');
  assert.is(new Set(events.map((l) => l.position)).size, Number(ctx.last));
  assert.ok(lines.some((l) => l.type === 'seal'));
  const r = await verifyExportFile(ctx.file!);
  assert.equal(r.findings, []);
  assert.is(r.counts.commits, Number(ctx.last));
  assert.is(r.counts.sealed, Number(ctx.last));
  assert.is(r.counts.unchained, 0);
});

/** Positions of: an AddressesAllocated commit, a single-event commit, a two-event commit, two adjacent commits. */
const targets = (lines: readonly Line[]) => {
  const events = lines.filter((l) => l.type === 'event');
  const alter = events.find((l) => l.event!.data.type === 'AddressesAllocated')!.position!;
  const twoEvents = events.find((l) => l.count === 2 && l.position !== alter)!.position!;
  const single = events.find((l) => l.count === 1 && Number(l.position) > Number(twoEvents) + 2 && l.event!.data.type === 'DataplaneProgrammed')!.position!;
  const swap = events.find((l) => l.count === 1 && Number(l.position) > Number(single) + 2 && events.find((x) => Number(x.position) === Number(l.position) + 1)?.count === 1)!.position!;
  return { alter, twoEvents, single, swap, next: String(Number(swap) + 1) };
};

const alterOne = (lines: Line[], position: string) => {
  const l = lines.find((x) => x.type === 'event' && x.position === position)!;
  l.event!.data = { ...l.event!.data, src: '10.99.99.99/32' };
};
const removeCommit = (lines: Line[], position: string) => lines.filter((x) => !(x.type === 'event' && x.position === position));
const removeSecondEvent = (lines: Line[], position: string) => lines.filter((x) => !(x.type === 'event' && x.position === position && x.index === 1));
const swapCommits = (lines: Line[], a: string, b: string) => {
  const ia = lines.findIndex((x) => x.position === a);
  const ib = lines.findIndex((x) => x.position === b);
  [lines[ia], lines[ib]] = [lines[ib]!, lines[ia]!];
};

s('one event altered, one commit removed, one event removed, two commits reordered: each named at its position', async (ctx) => {
  const base = readLines(ctx.file!);
  const t = targets(base);
  const check = async (name: string, edit: (ls: Line[]) => Line[], expected: string[]) => {
    const f = join(ctx.dir!, `${name}.jsonl`);
    writeLines(f, edit(structuredClone(base)));
    const r = await verifyExportFile(f);
    assert.not.ok(r.ok, `${name}: verify must fail`);
    assert.equal(kinds(r.findings).filter((k) => expected.includes(k)), expected, `${name}: ${kinds(r.findings).join(' ')}`);
    return r;
  };
  const altered = await check('altered', (ls) => (alterOne(ls, t.alter), ls), [`altered@${t.alter}`]);
  assert.match(altered.findings[0]!.message, /no longer matches its hash/);
  const removed = await check('removed', (ls) => removeCommit(ls, t.single), [`removed@${t.single}`]);
  assert.equal(kinds(removed.findings)[0], `removed@${t.single}`, 'the first broken link is the removed commit');
  await check('removed-event', (ls) => removeSecondEvent(ls, t.twoEvents), [`removed@${t.twoEvents}`]);
  const reordered = await check('reordered', (ls) => (swapCommits(ls, t.swap, t.next), ls), [`reordered@${t.swap}`]);
  assert.equal(kinds(reordered.findings), [`reordered@${t.swap}`]);

  // All at once: the report names all three, first broken link first.
  const all = await check('all', (ls) => {
    alterOne(ls, t.alter);
    swapCommits(ls, t.swap, t.next);
    return removeCommit(ls, t.single);
  }, [`altered@${t.alter}`, `removed@${t.single}`, `reordered@${t.swap}`]);
  assert.is(`${all.findings[0]!.kind}@${all.findings[0]!.position}`, `altered@${t.alter}`);
});

s('nsm audit verify --file: exit 1 and the first broken link in one line; --json lists all', (ctx) => {
  const lines = readLines(ctx.file!);
  const t = targets(lines);
  alterOne(lines, t.alter);
  const f = join(ctx.dir!, 'cli.jsonl');
  writeLines(f, lines);
  const human = spawnSync(NSM, ['audit', 'verify', '--file', f], { encoding: 'utf8', env: nsmEnv() });
  assert.is(human.status, 1, human.stderr);
  assert.match(human.stdout.split('\n')[0]!, new RegExp(`^audit verify: BROKEN: first broken link: altered at position ${t.alter} \\(pool\\.`));
  const json = spawnSync(NSM, ['audit', 'verify', '--file', f, '--json'], { encoding: 'utf8', env: nsmEnv() });
  assert.is(json.status, 1);
  const report = JSON.parse(json.stdout) as { ok: boolean; findings: Finding[] };
  assert.is(report.ok, false);
  assert.equal(kinds(report.findings), [`altered@${t.alter}`]);
  const good = spawnSync(NSM, ['audit', 'verify', '--file', ctx.file!], { encoding: 'utf8', env: nsmEnv() });
  assert.is(good.status, 0, good.stdout + good.stderr);
  assert.match(good.stdout, /^audit verify: OK: /);
});

s('nsm audit export --since TIME against the live store: a partial export that verifies', (ctx) => {
  const f = join(ctx.dir!, 'since.jsonl');
  const r = spawnSync(NSM, ['audit', 'export', '--server', ctx.mesh!.nats.url, '--domain', ctx.mesh!.domain, '--since', ctx.midTime!.toISOString(), '--format', 'jsonl', '--output', f], { encoding: 'utf8', env: nsmEnv() });
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stderr, /^exported \d+ commits/);
  const lines = readLines(f);
  const header = lines[0] as unknown as { complete: boolean; fromPosition: string; since: string };
  assert.is(header.complete, false);
  assert.is(header.since, ctx.midTime!.toISOString());
  const events = lines.filter((l) => l.type === 'event');
  assert.ok(events.length >= 1);
  assert.ok(events.every((l) => l.event!.data.type === 'NetworkServiceRegistered' || Number(l.position) >= Number(header.fromPosition)));
  assert.equal([...new Set(events.map((l) => l.event!.data.type))], ['NetworkServiceRegistered'], 'only what happened after the moment');
  const v = spawnSync(NSM, ['audit', 'verify', '--file', f], { encoding: 'utf8', env: nsmEnv() });
  assert.is(v.status, 0, v.stdout + v.stderr);
  const live = spawnSync(NSM, ['audit', 'verify', '--server', ctx.mesh!.nats.url, '--domain', ctx.mesh!.domain], { encoding: 'utf8', env: nsmEnv() });
  assert.is(live.status, 0, live.stdout + live.stderr);
  assert.match(live.stdout, new RegExp(`OK: ${ctx.last} commits`));
});

s.run();
