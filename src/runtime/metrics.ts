// Prometheus metrics of a long-running process (nsm up, control-plane, agent), through
// prom-client: one registry per process, its default process metrics (memory, CPU, event-loop
// lag), and the mesh's own (docs/observability.md has each one with its meaning).
//
// What the read model knows (connections, endpoints, nodes, lag) is read off the live view when
// Prometheus scrapes, not kept in counters beside it that could drift from it. Durations are
// observed as the live view folds the commits that complete them (src/read/metrics.ts), so the
// histograms cover what happened while this process ran, not the history it folded at start.
// Label values are bounded: kinds, reasons, states, causes, mechanisms, and the names operators
// give services and nodes; never a connection id or an actor.
import * as E from 'fp-ts/lib/Either.js';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { JetStreamManager } from 'nats';
import { errorText, type Logger } from '../ports/logger.ts';
import { COMMAND_KINDS } from '../contracts/commands.ts';
import type { Commit } from '../contracts/envelope.ts';
import { agentConsumerName, type Subjects } from '../contracts/subjects.ts';
import { CONTROL_PLANE_CONSUMER } from '../../infra/nats/streams.ts';
import { connectionCounts, DurationObserver, endpointCounts, nodeCounts, nodeReadiness, type Counted } from '../read/metrics.ts';
import type { AgentObserver } from '../../node-agent/agent.ts';
import type { ControlPlane, ControlPlaneObserver } from './controlPlane.ts';
import type { HttpMetrics } from './http.ts';


/** The process's registry, with Node's default metrics (process_*, nodejs_*: memory, CPU, event-loop lag, GC). */
export const createMetricsRegistry = (): Registry => {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
};

/** What /metrics serves: the registry's text in the Prometheus exposition format. */
export const metricsSource = (registry: Registry): HttpMetrics => ({ contentType: registry.contentType, text: () => registry.metrics() });

const SECONDS_SETUP = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
// A heal that waited for an endpoint or a node to come back lasts as long as the outage did.
const SECONDS_HEAL = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600];
const SECONDS_PROGRAM = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** A command kind as a label: the known kinds, anything else (a forged subject) is "unknown". */
const kindLabel = (kind: string | undefined): string => (kind !== undefined && (COMMAND_KINDS as readonly string[]).includes(kind) ? kind : 'unknown');
/** The aggregate a commit's stream belongs to ("connection.<id>" -> "connection"). */
const aggregateOf = (stream: string): string => stream.split('.', 1)[0] ?? '';

/** A gauge read when Prometheus scrapes: one number, or one per label set (series no longer there disappear). */
const readGauge =
  (registry: Registry) =>
  <L extends string>(name: string, help: string, labelNames: readonly L[], read: () => number | readonly Counted<L>[]): void =>
    void new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        const v = read();
        this.reset();
        if (typeof v === 'number') this.set(v);
        else for (const r of v) this.set(r.labels as Record<L, string>, r.value);
      },
    });

type Backlog = { readonly pending: number; readonly ackPending: number };

/** One consumer's backlog: not yet delivered, and delivered but not acknowledged; undefined when it does not exist (yet) or cannot be asked. */
const consumerBacklog = async (jsm: JetStreamManager, stream: string, durable: string, log: Logger): Promise<Backlog | undefined> => {
  try {
    const info = await jsm.consumers.info(stream, durable);
    return { pending: info.num_pending, ackPending: info.num_ack_pending };
  } catch (e) {
    log.debug('metrics: no consumer info', { stream, durable, error: errorText(e) });
    return undefined;
  }
};

/**
 * One asking shared by the gauges collected in the same scrape (prom-client collects them side by
 * side): a pair of gauges made from one consumer info costs one request, not two.
 */
const perScrape = <T>(ask: () => Promise<T>, ms = 500): (() => Promise<T>) => {
  let last: { at: number; answer: Promise<T> } | undefined;
  return () => {
    const now = Date.now();
    if (!last || now - last.at > ms) last = { at: now, answer: ask() };
    return last.answer;
  };
};


/** A pair of gauges, messages not yet delivered and delivered but not acknowledged, per label set. */
const backlogGauges = <L extends string>(registry: Registry, o: { name: string; what: string; labelNames: readonly L[]; backlogs: () => Promise<readonly { labels: Record<L, string>; backlog: Backlog | undefined }[]> }) => {
  const read = perScrape(o.backlogs);
  for (const [suffix, help, field] of [
    ['pending_messages', 'stored and not yet delivered (JetStream num_pending)', 'pending'],
    ['ack_pending_messages', 'delivered and not yet acknowledged (JetStream num_ack_pending)', 'ackPending'],
  ] as const) {
    new Gauge({
      name: `${o.name}_${suffix}`,
      help: `${o.what} ${help}`,
      labelNames: o.labelNames,
      registers: [registry],
      async collect() {
        const rows = await read();
        this.reset();
        for (const r of rows) if (r.backlog) this.set(r.labels, r.backlog[field]);
      },
    });
  }
};

/** The node command consumers' backlogs, per node; shared by the control plane's metrics (every joined node) and a lone agent's (its own). */
const nodeConsumerGauges = (registry: Registry, jsm: JetStreamManager, subjects: Subjects, nodes: () => readonly string[], log: Logger) =>
  backlogGauges(registry, {
    name: 'nsm_node_command_consumer',
    what: "Node commands for the node's agent (its durable consumer),",
    labelNames: ['node'],
    backlogs: () => Promise.all(nodes().map(async (node) => ({ labels: { node }, backlog: await consumerBacklog(jsm, subjects.streams.nodeCommands, agentConsumerName(node), log) }))),
  });

/**
 * The control plane's metrics. `observer` goes into startControlPlane (commands, appends);
 * `watch` starts reading the running control plane's view (call it once it has caught up).
 */
export const controlPlaneMetrics = (registry: Registry, log: Logger) => {
  const handled = new Counter({ name: 'nsm_commands_handled_total', help: 'Commands this process applied (including those that changed nothing), by kind', labelNames: ['kind'] as const, registers: [registry] });
  const refused = new Counter({
    name: 'nsm_commands_refused_total',
    help: 'Commands this process refused, by kind and reason (the reply\'s error code; "shed": too many waiting from one sender)',
    labelNames: ['kind', 'reason'] as const,
    registers: [registry],
  });
  const deferred = new Counter({ name: 'nsm_commands_deferred_total', help: 'Commands left for redelivery because of infrastructure trouble (the store, NATS), by kind', labelNames: ['kind'] as const, registers: [registry] });
  const commits = new Counter({ name: 'nsm_commits_appended_total', help: 'Commits this process appended to the event log, by aggregate', labelNames: ['aggregate'] as const, registers: [registry] });
  const events = new Counter({ name: 'nsm_events_appended_total', help: 'Events this process appended to the event log, by aggregate', labelNames: ['aggregate'] as const, registers: [registry] });
  const setup = new Histogram({ name: 'nsm_connection_setup_duration_seconds', help: 'From ConnectionRequested to the first ConnectionEstablished, by the events\' times; connections established while this process ran', buckets: SECONDS_SETUP, registers: [registry] });
  const heal = new Histogram({
    name: 'nsm_connection_heal_duration_seconds',
    help: 'From the first ConnectionHealing to ConnectionHealed (the event\'s durationMs), by cause; heals completed while this process ran',
    labelNames: ['cause'] as const,
    buckets: SECONDS_HEAL,
    registers: [registry],
  });

  const observer: ControlPlaneObserver = {
    commandHandled: (kind) => handled.inc({ kind: kindLabel(kind) }),
    commandRefused: (kind, reason) => refused.inc({ kind: kindLabel(kind), reason }),
    commandDeferred: (kind) => deferred.inc({ kind: kindLabel(kind) }),
    appended: (c: Commit) => {
      const aggregate = aggregateOf(c.stream);
      commits.inc({ aggregate });
      events.inc({ aggregate }, c.events.length);
    },
  };

  const watch = (cp: ControlPlane, jsm: JetStreamManager): (() => void) => {
    const model = () => cp.view.current;
    const gauge = readGauge(registry);
    gauge('nsm_connections', 'Connections in the read model by state, service and client node (closed and failed ones too)', ['state', 'service', 'node'], () => connectionCounts(model()));
    gauge('nsm_endpoints', 'Registered endpoints by service and node (an endpoint of two services counts for each)', ['service', 'node'], () => endpointCounts(model()));
    gauge('nsm_services', 'Registered network services', [], () => Object.keys(model().registry.services).length);
    gauge('nsm_nodes', 'Joined nodes by status (ready, lost)', ['status'], () => nodeCounts(model()));
    gauge('nsm_node_ready', 'Per joined node: 1 while ready, 0 while lost (no heartbeat within the node timeout)', ['node'], () => nodeReadiness(model()));
    gauge('nsm_node_heartbeat_age_seconds', "Seconds since this process last heard the node's heartbeat (joined nodes it has heard since it started)", ['node'], () => {
      const now = Date.now();
      // Joined nodes only: on an insecure mesh anyone may publish a heartbeat under any name.
      return Object.keys(model().nodes.nodes).flatMap((node) => {
        const hb = cp.heartbeats.get(node);
        return hb ? [{ labels: { node }, value: Math.max(0, now - Date.parse(hb.at)) / 1000 }] : [];
      });
    });
    gauge('nsm_workflow_failed_steps', 'Workflow steps the process manager gave up on and that have not recovered (nsm workflow ls)', [], () => Object.keys(model().workflow.failed).length);
    gauge('nsm_leader', '1 while this control plane replica holds the lease (runs the timers and the process manager)', [], () => (cp.isLeader() ? 1 : 0));
    gauge('nsm_live_view_position', 'Log position the live read model has folded up to', [], () => model().position);
    new Gauge({
      name: 'nsm_live_view_lag_commits',
      help: 'Log positions stored and not yet folded into the live read model (with JetStream: commits)',
      registers: [registry],
      async collect() {
        this.reset();
        const last = await cp.store.lastPosition()();
        if (E.isRight(last)) this.set(Math.max(0, Number(last.right) - model().position));
        else log.debug('metrics: no last position of the log', { error: last.left.message });
      },
    });
    backlogGauges(registry, {
      name: 'nsm_command_consumer',
      what: 'Commands for the control plane replicas (their shared durable consumer),',
      labelNames: [],
      backlogs: async () => [{ labels: {}, backlog: await consumerBacklog(jsm, cp.subjects.streams.commands, CONTROL_PLANE_CONSUMER, log) }],
    });
    nodeConsumerGauges(registry, jsm, cp.subjects, () => Object.keys(model().nodes.nodes), log);

    // The observer starts from the model as it is now and the listener is added in the same turn:
    // no commit folded in between can be missed or observed twice.
    const durations = new DurationObserver(model());
    return cp.view.onChange((_m, folded) => {
      for (const c of folded) {
        for (const o of durations.observe(c)) {
          if (o.kind === 'setup') setup.observe(o.seconds);
          else heal.observe({ cause: o.cause }, o.seconds);
        }
      }
    });
  };

  return { observer, watch };
};

/**
 * A node agent's metrics: programming durations and failures by mechanism, broken datapaths, the
 * sides it holds; with `consumer`, its own command consumer's backlog (a lone `nsm agent`; in
 * `nsm up` the control plane's metrics have every node's).
 */
export const agentMetrics = (registry: Registry, node: string, o: { sides: () => number; consumer?: { jsm: JetStreamManager; subjects: Subjects }; log: Logger }): AgentObserver => {
  const program = new Histogram({
    name: 'nsm_dataplane_program_duration_seconds',
    help: 'Time the dataplane took to program one side of a connection, failed attempts included, by node and mechanism',
    labelNames: ['node', 'mechanism'] as const,
    buckets: SECONDS_PROGRAM,
    registers: [registry],
  });
  const failures = new Counter({ name: 'nsm_dataplane_program_failures_total', help: 'Sides the dataplane failed to program, by node and mechanism', labelNames: ['node', 'mechanism'] as const, registers: [registry] });
  const broken = new Counter({ name: 'nsm_datapath_broken_total', help: 'Programmed client sides whose liveness probe failed and that were reported broken, by node and mechanism', labelNames: ['node', 'mechanism'] as const, registers: [registry] });
  readGauge(registry)('nsm_dataplane_sides', 'Sides of connections this agent has programmed and not removed', ['node'], () => [{ labels: { node }, value: o.sides() }]);
  if (o.consumer) nodeConsumerGauges(registry, o.consumer.jsm, o.consumer.subjects, () => [node], o.log);
  return {
    programmed: (mechanism, seconds, ok) => {
      program.observe({ node, mechanism }, seconds);
      if (!ok) failures.inc({ node, mechanism });
    },
    broken: (mechanism) => broken.inc({ node, mechanism }),
  };
};
