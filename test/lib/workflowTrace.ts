// Walks the steps a pure workflow reaction returns, continuations included, against a made-up
// world (what each decision answers, what each load finds), and writes down what would be done,
// one line per action: the given/when/then of workflows, without a store or a bus.
import type { DomainError } from '../../aggregates/domain.ts';
import type { MeshModel } from '../../projections/mesh.ts';
import type { Step } from '../../src/workflows/steps.ts';

export interface World {
  /** The aggregate's state after the command, or a refusal. Default: an empty object. */
  decide?(stream: string, command: { type: string } & Record<string, unknown>): unknown | { rejected: DomainError };
  /** What a load of the stream finds. Default: an empty object. */
  load?(stream: string): unknown;
  /** The model a build() is given at decision time. */
  model?: MeshModel;
}

const isRejection = (x: unknown): x is { rejected: DomainError } => typeof x === 'object' && x !== null && 'rejected' in x;

export const trace = (steps: readonly Step[], world: World = {}): string[] => {
  const out: string[] = [];
  const walk = (ss: readonly Step[], indent: string) => {
    for (const s of ss) {
      switch (s.kind) {
        case 'execute': {
          const command = ('build' in s.command ? s.command.build({ model: world.model!, loadOf: () => 0 }) : s.command) as unknown as { type: string } & Record<string, unknown>;
          out.push(`${indent}execute ${s.stream} ${command.type} (${s.step})${s.selection ? ' selection' : ''}`);
          const r = world.decide ? world.decide(s.stream, command) : {};
          if (isRejection(r)) {
            out.push(`${indent}  rejected: ${r.rejected.message}`);
            if (s.onRejected) walk(s.onRejected(r.rejected), indent + '  ');
          } else if (s.then) walk(s.then(r), indent + '  ');
          break;
        }
        case 'node-command':
          out.push(`${indent}node-command ${s.node} ${s.command.spec.side} ${s.command.spec.desired} gen ${s.command.spec.generation}`);
          break;
        case 'load':
          out.push(`${indent}load ${s.stream}`);
          walk(s.then(world.load ? world.load(s.stream) : {}), indent + '  ');
          break;
        case 'federate':
          out.push(`${indent}federate ${s.call.op}${'result' in s.call ? ` ${s.call.result}` : ''}${'connectionId' in s.call ? ` ${s.call.connectionId}` : ''}${'domain' in s.call ? ` ${s.call.domain}` : ''}`);
          break;
        case 'together':
          out.push(`${indent}together (at most ${s.limit})`);
          for (const g of s.groups) walk(g, indent + '  ');
          break;
        case 'log':
          out.push(`${indent}log ${s.level} ${s.msg}`);
          break;
      }
    }
  };
  walk(steps, '');
  return out;
};

/** The command of the first execute step for this stream and type, for a closer look. */
export const commandOf = (steps: readonly Step[], type: string, world: World = {}): Record<string, unknown> | undefined => {
  let found: Record<string, unknown> | undefined;
  const walk = (ss: readonly Step[]) => {
    for (const s of ss) {
      if (found) return;
      if (s.kind === 'execute') {
        const c = ('build' in s.command ? s.command.build({ model: world.model!, loadOf: () => 0 }) : s.command) as unknown as Record<string, unknown>;
        if (c.type === type) return void (found = c);
        const r = world.decide ? world.decide(s.stream, c as { type: string }) : {};
        if (isRejection(r)) walk(s.onRejected?.(r.rejected) ?? []);
        else walk(s.then?.(r) ?? []);
      } else if (s.kind === 'load') walk(s.then(world.load ? world.load(s.stream) : {}));
      else if (s.kind === 'together') s.groups.forEach(walk);
    }
  };
  walk(steps);
  return found;
};
