// The seal store on JetStream: one subject, appends guarded by the subject's last sequence so
// that of several sealers racing only one seal lands, and msgID seal-<from>-<to> so a retried or
// identical seal is stored once.
import * as E from 'fp-ts/lib/Either.js';
import type { NatsConnection, NatsError } from 'nats';
import * as D from '../../src/contracts/decode.ts';
import type { Seal } from '../../src/contracts/seal.ts';
import type { InvalidSealRecord, SealAppend, SealRecord, SealStore, SealTip } from '../../src/ports/sealStore.ts';
import { decodeSeal } from '../../src/contracts/seal.ts';
import { ensureStreams, isWrongLastSequence } from './streams.ts';
import { subjectsFor, type Subjects } from '../../src/contracts/subjects.ts';
import { consumeOrdered } from './consumers.ts';
import { publishRetrying } from './publish.ts';

const enc = new TextEncoder();

const parse = (data: Uint8Array, sequence: number): SealRecord | InvalidSealRecord => {
  const json = D.parseJson(data, 4 * 1024 * 1024);
  const seal = E.isRight(json) ? decodeSeal(json.right, 'seal') : json;
  return E.isRight(seal) ? { sequence, seal: seal.right } : { sequence, invalid: D.formatDecodeError(seal.left) };
};

export const jetStreamSealStore = async (nc: NatsConnection, domain: string | Subjects, opts: { create?: boolean } = {}): Promise<SealStore> => {
  const subjects = typeof domain === 'string' ? subjectsFor(domain) : domain;
  const jsm = await nc.jetstreamManager();
  const js = nc.jetstream();
  if (opts.create !== false) await ensureStreams(jsm, subjects);
  const stream = subjects.streams.seals;
  const exists = async () => {
    try {
      return (await jsm.streams.info(stream)).state;
    } catch (e) {
      if ((e as NatsError).code === '404') return undefined;
      throw e;
    }
  };

  const last = async (): Promise<SealTip | undefined> => {
    let m;
    try {
      m = await jsm.streams.getMessage(stream, { last_by_subj: subjects.seal });
    } catch (e) {
      if ((e as NatsError).code === '404') return undefined;
      throw e;
    }
    // Step back over what is not a seal (the stream holds the seal subject only, and nothing is
    // ever deleted from it, so its sequences are dense) to the newest readable seal.
    let foreign = 0;
    for (let seq = m.seq; seq >= 1; seq--) {
      let data = m.data;
      if (seq !== m.seq) {
        try {
          data = (await jsm.streams.getMessage(stream, { seq })).data;
        } catch (e) {
          if ((e as NatsError).code === '404') continue;
          throw e;
        }
      }
      const r = parse(data, seq);
      if (!('invalid' in r)) return { sequence: m.seq, seal: r.seal, ...(foreign > 0 ? { foreign } : {}) };
      foreign++;
    }
    return { sequence: m.seq, foreign };
  };

  const append = async (seal: Seal, afterSequence: number): Promise<SealAppend> => {
    try {
      const ack = await publishRetrying(js, subjects.seal, enc.encode(JSON.stringify(seal)), {
        msgID: `seal-${seal.from}-${seal.to}`,
        expect: { lastSubjectSequence: afterSequence },
        attemptTimeoutMs: 5000,
      });
      return { kind: 'appended', sequence: ack.seq, duplicate: ack.duplicate };
    } catch (e) {
      if (isWrongLastSequence(e)) return { kind: 'conflict' };
      throw e;
    }
  };

  async function* readAll(): AsyncIterable<SealRecord | InvalidSealRecord> {
    const state = await exists();
    if (!state || state.last_seq === 0 || state.messages === 0) return;
    const end = state.last_seq;
    const messages = await consumeOrdered(js, stream, subjects.seal, 0, 100);
    try {
      for await (const m of messages) {
        if (m.seq > end) break;
        yield parse(m.data, m.seq);
        if (m.seq >= end) break;
      }
    } finally {
      messages.stop();
    }
  }

  return { last, append, readAll };
};
