// verifyLog over in-memory logs: an intact log passes, and each kind of tampering is named at
// its position.
import * as assert from 'uvu/assert';
import { commitHash, GENESIS_HASH, makeSeal } from '../../src/audit/hash.ts';
import type { Seal } from '../../src/contracts/seal.ts';
import type { InvalidSealRecord, SealRecord } from '../../src/ports/sealStore.ts';
import { verifyLog, type Finding, type VerifiableCommit, type VerifyInput } from '../../src/audit/verify.ts';
import { asPosition, type EventEnvelope, type StoredCommit } from '../../src/contracts/envelope.ts';
import { suite } from '../lib/harness.ts';

const STREAMS = ['connection.a', 'connection.b', 'pool.ep', 'node.n1'];

/** 40 commits round-robin over 4 streams, 1-2 events each, chained as execute() chains them. */
const buildLog = (o: { count?: number; step?: bigint; chained?: boolean } = {}): StoredCommit[] => {
  const tips = new Map<string, { version: number; hash: string }>();
  const out: StoredCommit[] = [];
  for (let i = 0; i < (o.count ?? 40); i++) {
    const stream = STREAMS[i % STREAMS.length]!;
    const tip = tips.get(stream) ?? { version: 0, hash: GENESIS_HASH };
    const events: EventEnvelope[] = Array.from({ length: 1 + (i % 2) }, (_, k) => ({
      id: `e${i}-${k}`,
      type: 'ThingHappened',
      stream,
      version: tip.version + k + 1,
      time: new Date(Date.UTC(2030, 0, 1, 0, 0, i)).toISOString(),
      correlationId: `corr-${i}`,
      causationId: `cmd-${i}`,
      domain: 't',
      actor: 'alice',
      schema: 1,
      data: { type: 'ThingHappened', i, k } as { type: string },
    }));
    const position = BigInt(i + 1) * (o.step ?? 1n);
    const commit = { commitId: `c${i}`, stream, events, ...(o.chained === false ? {} : { prevHash: tip.hash }) };
    const hash = commitHash(commit);
    const stored: StoredCommit = { ...commit, ...(o.chained === false ? {} : { hash }), revision: Number(position), position: asPosition(position) };
    tips.set(stream, { version: tip.version + events.length, hash });
    out.push(stored);
  }
  return out;
};

const sealsOf = (log: readonly StoredCommit[], per = 10): SealRecord[] => {
  const out: SealRecord[] = [];
  let prev = GENESIS_HASH;
  for (let i = 0; i < log.length; i += per) {
    const seal = makeSeal(log.slice(i, i + per).map((c) => [c.position.toString(), commitHash(c)] as const), prev);
    out.push({ sequence: out.length + 1, seal });
    prev = seal.sealHash;
  }
  return out;
};

async function* iter<T>(xs: readonly T[]): AsyncIterable<T> {
  yield* xs;
}

const verify = (commits: readonly VerifiableCommit[], seals: readonly (SealRecord | InvalidSealRecord)[], extra: Partial<VerifyInput> = {}) =>
  verifyLog({ commits: iter(commits), seals: iter(seals), ...extra });

const kinds = (fs: readonly Finding[]) => fs.map((f) => `${f.kind}@${f.position ?? '-'}`);

/** Rewrites a commit's data and, like a careful attacker, its hash too. */
const rewrite = (c: StoredCommit, recomputeHash: boolean): StoredCommit => {
  const events = c.events.map((e, i) => (i === 0 ? { ...e, data: { ...e.data, forged: true } } : e));
  const altered = { ...c, events };
  return recomputeHash ? { ...altered, hash: commitHash(altered) } : altered;
};

const s = suite('verify');

s('an intact, sealed log passes', async () => {
  const log = buildLog();
  const r = await verify(log, sealsOf(log), { until: 40n });
  assert.equal(r.findings, []);
  assert.ok(r.ok);
  assert.equal(r.counts, { commits: 40, events: 60, streams: 4, seals: 4, sealed: 40, unsealed: 0, unchained: 0 });
  assert.is(r.firstPosition, '1');
  assert.is(r.lastPosition, '40');
});

s('commits after the last seal are counted as not sealed yet, not as a problem', async () => {
  const log = buildLog();
  const r = await verify(log, sealsOf(log.slice(0, 30)));
  assert.ok(r.ok, JSON.stringify(r.findings));
  assert.is(r.counts.sealed, 30);
  assert.is(r.counts.unsealed, 10);
});

s('altered: an event changed, its hash left alone', async () => {
  const log = buildLog();
  const seals = sealsOf(log);
  log[16] = rewrite(log[16]!, false);
  const r = await verify(log, seals);
  assert.not.ok(r.ok);
  assert.equal(kinds(r.findings), ['altered@17']);
  assert.is(r.findings[0]!.stream, 'connection.a');
  assert.match(r.findings[0]!.message, /no longer matches its hash/);
});

s('altered with the hash recomputed: the seal and the successor link still catch it', async () => {
  const log = buildLog();
  const seals = sealsOf(log);
  log[16] = rewrite(log[16]!, true);
  const r = await verify(log, seals);
  assert.equal(kinds(r.findings), ['altered@17', 'altered@17']);
  assert.match(r.findings.map((f) => f.message).join('\n'), /differs from what was sealed/);
  assert.match(r.findings.map((f) => f.message).join('\n'), /successor at position 21 chained to/);
  // Without seals, the next commit of the same stream still names it.
  const unsealed = await verify(log, []);
  assert.equal(kinds(unsealed.findings), ['altered@17']);
});

s('removed: a whole commit gone from the sealed log', async () => {
  const log = buildLog();
  const seals = sealsOf(log);
  const gone = log.splice(12, 1)[0]!; // position 13, connection.a
  const r = await verify(log, seals, { until: 40n });
  assert.is(gone.stream, 'connection.a');
  assert.equal(kinds(r.findings), ['removed@13', 'removed@17']);
  assert.match(r.findings[0]!.message, /sealed at position 13 is missing/);
  assert.match(r.findings[1]!.message, /connection\.a v\d+(\.\.\d+)? is missing before position 17/);
});

s('removed: the last commits of the log, still listed in a seal', async () => {
  const log = buildLog();
  const r = await verify(log.slice(0, 38), sealsOf(log), { until: 40n });
  assert.equal(kinds(r.findings), ['removed@39', 'removed@40']);
});

s('removed: one event of a multi-event commit (its lines declared two)', async () => {
  const log: VerifiableCommit[] = buildLog();
  const seals = sealsOf(log);
  const c = log[9]!; // two events
  assert.is(c.events.length, 2);
  log[9] = { ...c, events: c.events.slice(0, 1), declaredEvents: 2 };
  const r = await verify(log, seals);
  assert.equal(kinds(r.findings), ['removed@10', 'removed@14']);
  assert.match(r.findings[0]!.message, /declares 2 events but has 1/);
});

s('reordered: two commits swapped in the log', async () => {
  const log = buildLog();
  const seals = sealsOf(log);
  [log[20], log[21]] = [log[21]!, log[20]!];
  const r = await verify(log, seals);
  assert.equal(kinds(r.findings), ['reordered@21']);
  assert.match(r.findings[0]!.message, /position 21 comes after position 22/);
});

s('reordered: two commits swapped in the same stream', async () => {
  const log = buildLog();
  const seals = sealsOf(log);
  // positions 21 and 25 are both connection.a
  [log[20], log[24]] = [log[24]!, log[20]!];
  const r = await verify(log, seals);
  assert.ok(kinds(r.findings).includes('reordered@21'), kinds(r.findings).join(' '));
  assert.ok(r.findings.every((f) => f.kind === 'reordered'), kinds(r.findings).join(' '));
});

s('reordered: contents swapped but positions rewritten to look in order; the seals notice', async () => {
  const log = buildLog();
  const seals = sealsOf(log);
  const a = log[20]!;
  const b = log[21]!;
  log[20] = { ...b, position: a.position, revision: a.revision };
  log[21] = { ...a, position: b.position, revision: b.revision };
  const r = await verify(log, seals);
  const sealedAt = r.findings.filter((f) => /holds the commit sealed at/.test(f.message));
  assert.equal(kinds(sealedAt), ['reordered@21', 'reordered@22']);
});

s('inserted: a commit no seal lists, between sealed positions', async () => {
  const log = buildLog({ step: 10n }); // positions 10, 20, ... as an EventStoreDB log has
  const seals = sealsOf(log);
  const extra: StoredCommit = { commitId: 'x', stream: 'node.intruder', events: [{ ...log[0]!.events[0]!, stream: 'node.intruder', version: 1 }], prevHash: GENESIS_HASH, revision: 255, position: asPosition(255) };
  const forged = { ...extra, hash: commitHash(extra) };
  const r = await verify([...log.slice(0, 25), forged, ...log.slice(25)], seals);
  assert.equal(kinds(r.findings), ['inserted@255']);
});

s('seal broken: a seal altered, a seal removed', async () => {
  const log = buildLog();
  const seals = sealsOf(log);
  const altered: SealRecord[] = seals.map((x, i) => (i === 1 ? { ...x, seal: { ...x.seal, entries: x.seal.entries.slice(0, 9) as Seal['entries'] } } : x));
  const r1 = await verify(log, altered);
  assert.ok(r1.findings.some((f) => f.kind === 'seal-broken' && /does not match its own sealHash/.test(f.message)), kinds(r1.findings).join(' '));
  const removed = [seals[0]!, seals[2]!, seals[3]!];
  const r2 = await verify(log, removed);
  assert.ok(r2.findings.some((f) => f.kind === 'seal-broken' && /does not chain/.test(f.message)), kinds(r2.findings).join(' '));
  assert.not.ok(r2.ok);
  const noFirst = await verify(log, seals.slice(1));
  assert.ok(noFirst.findings.some((f) => f.kind === 'seal-broken' && /first seal but does not start the chain/.test(f.message)));
  const unreadable = await verify(log, [seals[0]!, { sequence: 2, invalid: 'seal.entries: expected an array' }, seals[2]!, seals[3]!]);
  assert.ok(unreadable.findings.some((f) => f.kind === 'seal-broken' && /unreadable/.test(f.message)));
});

s('unchained commits (written before the chain) pass, counted, and seals still cover them', async () => {
  const log = buildLog({ chained: false });
  const r = await verify(log, sealsOf(log));
  assert.ok(r.ok, kinds(r.findings).join(' '));
  assert.is(r.counts.unchained, 40);
  assert.is(r.firstUnchained, '1');
  const tampered = [...log];
  tampered[5] = rewrite(log[5]!, false);
  assert.equal(kinds((await verify(tampered, sealsOf(log))).findings), ['altered@6']);
});

s('a partial range (an export since a position) checks what it can', async () => {
  const log = buildLog();
  const seals = sealsOf(log);
  const r = await verify(log.slice(14), seals, { partialFrom: 15n, until: 40n });
  assert.ok(r.ok, kinds(r.findings).join(' '));
  assert.is(r.counts.sealed, 26);
  const full = await verify(log.slice(14), seals, { until: 40n });
  assert.not.ok(full.ok, 'the same commits claimed as a whole log miss their beginning');
});

s('an export without its end line is reported truncated', async () => {
  const log = buildLog();
  const r = await verify(log, sealsOf(log), { truncated: () => true });
  assert.equal(kinds(r.findings), ['truncated@-']);
});

s.run();
