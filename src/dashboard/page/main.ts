// The dashboard page (bundled with cytoscape by src/runtime/dashboard.ts): signs in with a token
// from `nsm token`, draws the picture of /api/v1/topology, follows /api/v1/events/stream, travels
// back with the slider (the same query as of a log position) and shows a connection's facts and
// history. The token goes in the Authorization header of fetch() (EventSource could only put it
// in the URL, where logs and the history keep it) and lives in sessionStorage of this tab.
import cytoscape from 'cytoscape';
import type { Topology, TopologyDelta } from '../../read/topology.ts';
import {
  applyDelta,
  connectionEdgeId,
  connectionFacts,
  DRAW_LIMIT,
  filterChoices,
  graphOf,
  groupMembers,
  liveTopology,
  timeline,
  type ConnectionDetail,
  type Filters,
  type GraphPicture,
  type HistoryRow,
  type LiveTopology,
} from '../graph.ts';

const TOKEN_KEY = 'nsm-dashboard-token';
const byId = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

class Unauthorized extends Error {}

const authHeaders = (): Record<string, string> => {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { authorization: `Bearer ${token}` } : {};
};

const api = async <T>(path: string): Promise<T> => {
  const r = await fetch(path, { headers: authHeaders(), cache: 'no-store' });
  const body = (await r.json().catch(() => ({}))) as { error?: string };
  if (r.status === 401) throw new Unauthorized(body.error ?? 'this mesh needs a token');
  if (!r.ok) throw new Error(body.error ?? `${path}: HTTP ${r.status}`);
  return body as T;
};

const STATE_COLOURS: Record<string, string> = {
  established: '#2e9d4f',
  requested: '#3b7dd8',
  'endpoint-selected': '#3b7dd8',
  'path-planned': '#3b7dd8',
  healing: '#e0a100',
  waiting: '#e07000',
  down: '#d0302f',
  failed: '#8b1a1a',
  closed: '#a0a7b3',
};

const style: cytoscape.StylesheetJson = [
  { selector: 'node', style: { label: 'data(label)', 'font-size': 10, 'text-valign': 'bottom', 'text-margin-y': 3, color: '#1d2430' } },
  {
    selector: 'node.node',
    style: { shape: 'round-rectangle', 'background-color': '#eef1f6', 'border-width': 1, 'border-color': '#8a93a3', 'text-valign': 'top', 'text-margin-y': -4, 'font-weight': 'bold', 'font-size': 12, padding: '14px', width: 40, height: 30 },
  },
  { selector: 'node.node.lost', style: { 'border-color': '#d0302f', 'border-style': 'dashed', 'border-width': 2 } },
  { selector: 'node.node.implied', style: { 'border-style': 'dotted' } },
  { selector: 'node.endpoint', style: { shape: 'round-hexagon', 'background-color': '#1c8a8a', width: 22, height: 22 } },
  { selector: 'node.endpoint.implied', style: { 'background-color': '#8fc4c4' } },
  { selector: 'node.client', style: { shape: 'ellipse', 'background-color': '#6c4ab6', width: 18, height: 18 } },
  { selector: 'node.service', style: { shape: 'diamond', 'background-color': '#8a93a3', width: 20, height: 20 } },
  { selector: 'edge', style: { width: 2, 'curve-style': 'bezier', 'target-arrow-shape': 'triangle', 'arrow-scale': 0.7, 'line-color': '#a0a7b3', 'target-arrow-color': '#a0a7b3' } },
  { selector: 'edge.group', style: { width: 'data(width)', label: 'data(label)', 'font-size': 10, 'text-background-color': '#fff', 'text-background-opacity': 0.8, 'text-background-padding': '1px', 'loop-direction': '-45deg', 'loop-sweep': '-60deg' } },
  ...Object.entries(STATE_COLOURS).map(([s, colour]) => ({ selector: `edge.${s}`, style: { 'line-color': colour, 'target-arrow-color': colour } })),
  { selector: 'edge.closed', style: { 'line-style': 'dashed' } },
  { selector: 'edge:selected, edge.chosen', style: { width: 5, 'underlay-color': '#2357b5', 'underlay-opacity': 0.25, 'underlay-padding': 4 } },
];

interface Page {
  /** What is drawn: the live picture, or one replayed to a past position. */
  shown?: LiveTopology;
  /** The live picture, kept up to date by the stream while a past one is shown. */
  live?: LiveTopology;
  /** Deltas that came before the first live picture. */
  early: TopologyDelta[];
  livePosition: number;
  pastPosition?: number;
  filters: Filters;
  selected?: { kind: 'connection'; id: string } | { kind: 'group'; key: string };
  stream?: AbortController;
  renderTimer?: ReturnType<typeof setTimeout>;
  lastPicture?: GraphPicture;
  firstRenderMs?: number;
  firstFrameMs?: number;
  generation: number;
}

const page: Page = { early: [], livePosition: 0, filters: {}, generation: 0 };

/**
 * `#draw-limit=N` in the address: draw up to N connections one edge each (DRAW_LIMIT otherwise).
 * For bench/dashboard.ts, which measures what drawing all of them would cost.
 */
const drawLimit = (() => {
  const n = Number(/(?:^#|&)draw-limit=(\d+)/.exec(location.hash)?.[1]);
  return Number.isSafeInteger(n) && n > 0 ? n : DRAW_LIMIT;
})();
const cy = cytoscape({ container: byId('graph'), style, minZoom: 0.05, maxZoom: 1.6, boxSelectionEnabled: false });

/** Read by the browser tests and the bench (what is drawn, and when the first picture was). */
(window as unknown as { nsmDashboard: unknown }).nsmDashboard = {
  cy,
  state: () => ({
    live: page.pastPosition === undefined,
    livePosition: page.livePosition,
    shownPosition: page.shown?.position,
    connections: page.shown?.connections.size ?? 0,
    aggregated: page.lastPicture?.aggregated ?? false,
    drawnEdges: cy.edges().length,
    firstRenderMs: page.firstRenderMs,
    firstFrameMs: page.firstFrameMs,
  }),
  /** The state of a connection in the picture shown (drawn one by one or in an aggregated edge). */
  connectionState: (id: string) => page.shown?.connections.get(id)?.state,
};

const message = (text: string, error = false) => {
  const m = byId('message');
  m.textContent = text;
  m.className = error ? 'error' : '';
};

const includeClosed = () => page.filters.state === 'closed';

// ---- drawing ----

const render = () => {
  page.renderTimer = undefined;
  const t = page.shown;
  if (!t) return;
  const picture = graphOf(t, page.filters, drawLimit);
  page.lastPicture = picture;
  const want = new Map(picture.elements.map((e) => [e.data.id as string, e]));
  let structural = false;
  cy.batch(() => {
    for (const el of cy.elements().toArray()) {
      if (!el.removed() && !want.has(el.id())) {
        if (el.isNode()) structural = true;
        el.remove();
      }
    }
    const added: cytoscape.ElementDefinition[] = [];
    for (const e of picture.elements) {
      const el = cy.getElementById(e.data.id as string);
      if (el.empty()) {
        added.push({ group: e.group, data: { ...e.data } as cytoscape.ElementDataDefinition, classes: e.classes });
        if (e.group === 'nodes') structural = true;
        continue;
      }
      if (el.isEdge() && (el.data('source') !== e.data.source || el.data('target') !== e.data.target)) {
        el.move({ source: e.data.source as string, target: e.data.target as string });
      }
      el.data(e.data);
      el.classes(e.classes);
    }
    if (added.length) cy.add(added);
  });
  if (structural) cy.layout({ name: 'cose', animate: false, fit: true, padding: 30, nodeDimensionsIncludeLabels: true, randomize: false, numIter: 600 } as cytoscape.LayoutOptions).run();
  markSelected();
  const where = page.pastPosition === undefined ? 'live' : `as of position ${t.position}`;
  byId('summary').textContent =
    `${picture.matching} of ${picture.total} connections ${where}` +
    (picture.aggregated ? ` — more than can be drawn one by one: one edge per client node, service and endpoint node (${picture.elements.filter((e) => e.group === 'edges').length} edges)` : '') +
    (t.scope === 'own' ? ' — your own connections only' : '');
  byId('summary').dataset.connections = String(picture.matching);
  if (page.firstRenderMs === undefined) {
    page.firstRenderMs = performance.now();
    // Cytoscape draws its canvas in an animation frame: two frames on, the first picture is on screen.
    requestAnimationFrame(() => requestAnimationFrame(() => (page.firstFrameMs = performance.now())));
  }
  document.dispatchEvent(new Event('nsm:rendered'));
};

/** Renders at most ten times a second: a burst of deltas costs one render. */
const scheduleRender = () => {
  page.renderTimer ??= setTimeout(render, 100);
};

const markSelected = () => {
  cy.elements('.chosen').removeClass('chosen');
  const s = page.selected;
  if (s?.kind === 'connection') cy.getElementById(connectionEdgeId(s.id)).addClass('chosen');
};

const refreshChoices = () => {
  const t = page.live ?? page.shown;
  if (!t) return;
  const choices = filterChoices(t);
  const fill = (id: string, values: string[], all: string) => {
    const sel = byId<HTMLSelectElement>(id);
    const current = sel.value;
    const wanted = [...new Set([...values, ...(current ? [current] : [])])].sort();
    const have = [...sel.options].slice(1).map((o) => o.value);
    if (have.join('\u0000') === wanted.join('\u0000')) return;
    sel.replaceChildren(new Option(all, ''), ...wanted.map((v) => new Option(v, v)));
    sel.value = current;
  };
  fill('filter-service', choices.services, 'all services');
  fill('filter-node', choices.nodes, 'all nodes');
};

// ---- the slider ----

const positionText = () => {
  const t = page.shown;
  if (!t) return '';
  return page.pastPosition === undefined ? `position ${page.livePosition} (live)` : `position ${t.position} of ${page.livePosition}${t.time ? ` · ${t.time}` : ''}`;
};

const updateSlider = () => {
  const slider = byId<HTMLInputElement>('slider');
  slider.disabled = page.livePosition < 1;
  slider.max = String(Math.max(1, page.livePosition));
  if (page.pastPosition === undefined) slider.value = slider.max;
  byId('position').textContent = positionText();
  const mode = byId('mode');
  mode.textContent = page.pastPosition === undefined ? 'live' : 'past';
  mode.className = `mode ${page.pastPosition === undefined ? 'live' : 'past'}`;
  byId<HTMLButtonElement>('live').disabled = page.pastPosition === undefined;
};

let travelTimer: ReturnType<typeof setTimeout> | undefined;

/** Shows the mesh as of a log position (the topology query with `at`, a replay of the log). */
const travel = async (position: number) => {
  const generation = ++page.generation;
  message(`replaying the log to position ${position}…`);
  try {
    const t = await api<Topology>(`/api/v1/topology?at=${position}${includeClosed() ? '&includeClosed=true' : ''}`);
    if (generation !== page.generation) return;
    page.pastPosition = position;
    page.shown = liveTopology(t);
    message('');
    updateSlider();
    render();
    if (page.selected?.kind === 'connection') void showConnection(page.selected.id);
  } catch (e) {
    handleError(e);
  }
};

const goLive = async () => {
  page.pastPosition = undefined;
  page.generation++;
  await loadLive();
};

// ---- live ----

const loadLive = async () => {
  const generation = ++page.generation;
  const t = await api<Topology>(`/api/v1/topology${includeClosed() ? '?includeClosed=true' : ''}`);
  if (generation !== page.generation) return;
  const live = liveTopology(t);
  for (const d of page.early) applyDelta(live, d, { includeClosed: includeClosed() });
  page.early = [];
  page.live = live;
  page.livePosition = Math.max(page.livePosition, live.position);
  if (page.pastPosition === undefined) page.shown = live;
  refreshChoices();
  updateSlider();
  render();
};

const onDelta = (d: TopologyDelta) => {
  page.livePosition = Math.max(page.livePosition, d.position);
  updateSlider();
  if (!page.live) {
    page.early.push(d);
    return;
  }
  if (!applyDelta(page.live, d, { includeClosed: includeClosed() })) return;
  if (d.services || d.connections.length || d.nodes || d.removedNodes) refreshChoices();
  if (page.pastPosition !== undefined) return;
  scheduleRender();
  const s = page.selected;
  if (s?.kind === 'connection' && d.connections.some((c) => c.id === s.id)) void showConnection(s.id);
};

/** Reads the event stream: `event:` and `data:` lines, events separated by a blank line. */
const follow = async () => {
  page.stream?.abort();
  const ctrl = new AbortController();
  page.stream = ctrl;
  const r = await fetch('/api/v1/events/stream', { headers: { ...authHeaders(), accept: 'text/event-stream' }, cache: 'no-store', signal: ctrl.signal });
  if (r.status === 401) throw new Unauthorized(((await r.json().catch(() => ({}))) as { error?: string }).error ?? 'this mesh needs a token');
  if (!r.ok || !r.body) throw new Error(`the event stream answered HTTP ${r.status}: ${((await r.json().catch(() => ({}))) as { error?: string }).error ?? ''}`);
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  void (async () => {
    let buffer = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut: number;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let event = 'message';
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data += line.slice(6);
          }
          if (!data) continue;
          const payload = JSON.parse(data) as Record<string, unknown>;
          if (event === 'hello') {
            page.livePosition = Math.max(page.livePosition, payload.position as number);
            updateSlider();
          } else if (event === 'delta') onDelta(payload as unknown as TopologyDelta);
          else if (event === 'resync') void loadLive().catch(handleError);
          else if (event === 'end') {
            ctrl.abort();
            return handleError(new Unauthorized(String(payload.error)));
          }
        }
      }
    } catch (e) {
      if (ctrl.signal.aborted) return;
      message(`the live stream broke (${(e as Error).message}); reconnecting`, true);
    }
    if (ctrl.signal.aborted || page.stream !== ctrl) return;
    // The stream ended (the server closed a slow reader, or restarted): reconnect and read the picture again.
    setTimeout(() => void start(), 1000);
  })();
};

const start = async () => {
  try {
    page.live = undefined;
    page.early = [];
    await follow();
    if (page.pastPosition === undefined) await loadLive();
    else {
      await loadLive();
      await travel(page.pastPosition);
    }
    byId('login').hidden = true;
    byId('logout').hidden = sessionStorage.getItem(TOKEN_KEY) === null;
    message('');
  } catch (e) {
    handleError(e);
  }
};

/** Without a valid token nothing of the mesh stays on the page: the prompt, and an empty graph. */
const signedOut = (why: string) => {
  page.stream?.abort();
  page.stream = undefined;
  page.live = undefined;
  page.shown = undefined;
  page.selected = undefined;
  page.livePosition = 0;
  page.pastPosition = undefined;
  cy.elements().remove();
  byId('detail').hidden = true;
  byId('detail-body').replaceChildren();
  byId('summary').textContent = '';
  byId('position').textContent = '';
  for (const id of ['filter-service', 'filter-node']) byId<HTMLSelectElement>(id).replaceChildren(new Option(id === 'filter-node' ? 'all nodes' : 'all services', ''));
  updateSlider();
  byId('login').hidden = false;
  byId('logout').hidden = true;
  byId('login-error').textContent = sessionStorage.getItem(TOKEN_KEY) ? why : '';
  sessionStorage.removeItem(TOKEN_KEY);
  byId<HTMLTextAreaElement>('token').focus();
};

const handleError = (e: unknown) => {
  if (e instanceof Unauthorized) return signedOut(e.message);
  message((e as Error).message, true);
};

// ---- detail ----

const el = (tag: string, text?: string, cls?: string) => {
  const n = document.createElement(tag);
  if (text !== undefined) n.textContent = text;
  if (cls) n.className = cls;
  return n;
};

const ms = (n: number) => (n < 1000 ? `${n} ms` : `${(n / 1000).toFixed(n < 10_000 ? 2 : 1)} s`);

const showConnection = async (id: string) => {
  page.selected = { kind: 'connection', id };
  markSelected();
  const at = page.pastPosition !== undefined ? `?at=${page.pastPosition}` : '';
  const body = byId('detail-body');
  byId('detail').hidden = false;
  try {
    const [c, history] = await Promise.all([api<ConnectionDetail>(`/api/v1/connections/${encodeURIComponent(id)}${at}`), api<HistoryRow[]>(`/api/v1/history/${encodeURIComponent(id)}`)]);
    if (page.selected?.kind !== 'connection' || page.selected.id !== id) return;
    const facts = el('dl', undefined, 'facts');
    for (const [k, v] of connectionFacts(c)) facts.append(el('dt', k), el('dd', v));
    const list = el('ol', undefined, 'timeline');
    const shownAt = page.pastPosition;
    for (const t of timeline(history)) {
      const later = shownAt !== undefined && Number(t.position) > shownAt;
      const li = el('li', undefined, `${t.type}${later ? ' later' : ''}`);
      li.dataset.type = t.type;
      li.append(
        el('div', t.type, 'ev-type'),
        el('div', `${t.time} · +${ms(t.sincePreviousMs)} (${ms(t.sinceStartMs)} in) · position ${t.position}`, 'ev-meta'),
        el('div', `by ${t.actor} · after ${t.cause}${t.durationMs !== undefined ? ` · took ${ms(t.durationMs)}` : ''}`, 'ev-meta'),
      );
      if (t.note) li.append(el('div', t.note, 'ev-note'));
      list.append(li);
    }
    body.replaceChildren(el('h2', `connection ${c.id}`), facts, el('h3', `history (${history.length} events${shownAt !== undefined ? `; after position ${shownAt} greyed` : ''})`), list);
    body.dataset.connection = id;
  } catch (e) {
    if (e instanceof Unauthorized) return handleError(e);
    body.replaceChildren(el('h2', `connection ${id}`), el('p', (e as Error).message));
    body.dataset.connection = id;
  }
};

const showGroup = (key: string) => {
  const t = page.shown;
  if (!t) return;
  page.selected = { kind: 'group', key };
  markSelected();
  const edge = cy.getElementById(`agg:${key}`);
  const members = groupMembers(t, page.filters, key);
  const [clientNode, service, endpointNode] = key.split('|');
  const list = el('ul', undefined, 'members');
  for (const m of members) {
    const b = el('button', m.id) as HTMLButtonElement;
    b.type = 'button';
    b.addEventListener('click', () => void showConnection(m.id));
    const li = el('li');
    li.append(b, ` ${m.state}`);
    list.append(li);
  }
  byId('detail-body').replaceChildren(
    el('h2', `${service} from ${clientNode} to ${endpointNode || '(no endpoint yet)'}`),
    el('p', `${edge.data('count') ?? members.length} connections: ${edge.data('states') ?? ''}`),
    el('h3', `the first ${members.length}`),
    list,
  );
  byId('detail').hidden = false;
};

// ---- wiring ----

cy.on('tap', 'edge', (e) => {
  const d = e.target.data() as { kind: string; connection?: string; group?: string };
  if (d.kind === 'connection' && d.connection) void showConnection(d.connection);
  else if (d.kind === 'group' && d.group) showGroup(d.group);
});

byId('slider').addEventListener('input', () => {
  const v = Number(byId<HTMLInputElement>('slider').value);
  byId('position').textContent = `position ${v} of ${page.livePosition}…`;
  if (travelTimer) clearTimeout(travelTimer);
  // Debounced: a drag asks for one replay when it rests, not one per step.
  travelTimer = setTimeout(() => void (v >= page.livePosition ? goLive().catch(handleError) : travel(v)), 250);
});
byId('live').addEventListener('click', () => void goLive().catch(handleError));

for (const [id, key] of [
  ['filter-service', 'service'],
  ['filter-node', 'node'],
  ['filter-state', 'state'],
] as const) {
  byId<HTMLSelectElement>(id).addEventListener('change', () => {
    const wasClosed = includeClosed();
    const v = byId<HTMLSelectElement>(id).value;
    page.filters = { ...page.filters, [key]: v || undefined };
    // Closed connections are not in the picture unless asked for: read it again with them.
    if (includeClosed() !== wasClosed) void (page.pastPosition === undefined ? loadLive() : travel(page.pastPosition)).catch(handleError);
    else render();
  });
}

byId('search').addEventListener('submit', (e) => {
  e.preventDefault();
  const id = byId<HTMLInputElement>('search-id').value.trim();
  if (!id) return;
  const edge = cy.getElementById(connectionEdgeId(id));
  if (edge.nonempty()) cy.animate({ center: { eles: edge }, duration: 200 });
  else if (!page.shown?.connections.has(id)) message(`connection ${id} is not in this picture; its detail is asked for anyway`);
  void showConnection(id);
});

byId('detail-close').addEventListener('click', () => {
  page.selected = undefined;
  markSelected();
  byId('detail').hidden = true;
});

byId('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const token = byId<HTMLTextAreaElement>('token').value.trim();
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  byId<HTMLTextAreaElement>('token').value = '';
  void start();
});

byId('logout').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  signedOut('');
});

void start();
