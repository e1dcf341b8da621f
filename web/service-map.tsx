import type { ELK as ElkApi, ElkNode } from 'elkjs/lib/elk-api';
import { useEffect, useMemo, useState } from 'preact/hooks';
import {
  edgeId,
  edgeOf,
  type EdgeVerdict,
  type UiEdge,
  type UiFlowRow,
  type UiSnapshot,
} from '../src/ui/model.js';
import { flowSummary } from './flows.js';

export const VERDICT_TEXT: Record<EdgeVerdict, string> = {
  forwarded: 'forwarded',
  dropped: 'policy-dropped',
  'no-backend': 'no backend',
};

// elkjs is most of the bundle: loaded on first use, so the mesh map paints without waiting for it.
let elkInstance: Promise<ElkApi> | undefined;
function elk(): Promise<ElkApi> {
  elkInstance ??= import('elkjs/lib/elk.bundled.js').then((m) => new m.default());
  return elkInstance;
}
const NODE_W = 150;
const NODE_H = 40;

interface Box {
  readonly id: string;
  readonly label: string;
  readonly sub: string;
  readonly kind: 'workload' | 'service' | 'other';
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
}

interface Group {
  readonly id: string;
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
}

interface Layout {
  readonly key: string;
  readonly boxes: readonly Box[];
  readonly groups: readonly Group[];
  readonly width: number;
  readonly height: number;
}

function namespaceOf(key: string): string | undefined {
  const parts = key.split('/');
  if (parts[0] === 'service') return parts[2];
  if (parts[0] === 'reserved' || parts[0] === 'ip') return undefined;
  return parts[1];
}

function clusterOfKey(key: string): string | undefined {
  const parts = key.split('/');
  if (parts[0] === 'service') return parts[1];
  if (parts[0] === 'reserved' || parts[0] === 'ip') return undefined;
  return parts[0];
}

function labelOf(key: string): { label: string; sub: string; kind: Box['kind'] } {
  const parts = key.split('/');
  if (parts[0] === 'service') return { label: parts[3] ?? key, sub: 'service', kind: 'service' };
  if (parts[0] === 'reserved') return { label: parts[1] ?? key, sub: 'reserved', kind: 'other' };
  if (parts[0] === 'ip') return { label: parts[1] ?? key, sub: 'address', kind: 'other' };
  return { label: parts[2] ?? key, sub: parts[0] ?? '', kind: 'workload' };
}

/**
 * A curve between the facing sides of two boxes (right to left, left to right, or bottom
 * to top when they overlap horizontally), and where its label goes: a third of the way,
 * so labels of edges meeting at one box do not pile up there.
 */
function edgePath(a: Box, b: Box): { d: string; lx: number; ly: number } {
  let x1: number, y1: number, x2: number, y2: number;
  let horizontal = true;
  if (b.x >= a.x + a.w) {
    [x1, y1, x2, y2] = [a.x + a.w, a.y + a.h / 2, b.x, b.y + b.h / 2];
  } else if (b.x + b.w <= a.x) {
    [x1, y1, x2, y2] = [a.x, a.y + a.h / 2, b.x + b.w, b.y + b.h / 2];
  } else {
    horizontal = false;
    const down = b.y >= a.y;
    [x1, y1, x2, y2] = [
      a.x + a.w / 2,
      down ? a.y + a.h : a.y,
      b.x + b.w / 2,
      down ? b.y : b.y + b.h,
    ];
  }
  const mx = (x1 + x2) / 2;
  const my = (y1 + y2) / 2;
  const d = horizontal
    ? `M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2} ${y2}`
    : `M ${x1} ${y1} C ${x1} ${my}, ${x2} ${my}, ${x2} ${y2}`;
  return { d, lx: x1 + (x2 - x1) / 3, ly: y1 + (y2 - y1) / 3 - 5 };
}

/** Lays out one namespace: a compound node per cluster holding its workloads. */
async function layoutOf(
  key: string,
  nodes: readonly { id: string; pods: number }[],
  edges: readonly UiEdge[],
): Promise<Layout> {
  const byCluster = new Map<string, ElkNode[]>();
  const loose: ElkNode[] = [];
  for (const n of nodes) {
    const c = clusterOfKey(n.id);
    const elkNode: ElkNode = { id: n.id, width: NODE_W, height: NODE_H };
    if (c === undefined) loose.push(elkNode);
    else byCluster.set(c, [...(byCluster.get(c) ?? []), elkNode]);
  }
  const graph: ElkNode = {
    id: 'root',
    layoutOptions: {
      'elk.algorithm': 'layered',
      'elk.direction': 'RIGHT',
      'elk.hierarchyHandling': 'INCLUDE_CHILDREN',
      'elk.spacing.nodeNode': '30',
      'elk.layered.spacing.nodeNodeBetweenLayers': '160',
      'elk.padding': '[top=20,left=20,bottom=20,right=20]',
    },
    children: [
      ...[...byCluster.entries()].map(([c, children]) => ({
        id: `cluster:${c}`,
        layoutOptions: { 'elk.padding': '[top=30,left=15,bottom=15,right=15]' },
        children,
      })),
      ...loose,
    ],
    edges: edges.map((e) => ({ id: e.id, sources: [e.from], targets: [e.to] })),
  };
  const out = await (await elk()).layout(graph);
  const boxes: Box[] = [];
  const groups: Group[] = [];
  for (const g of out.children ?? []) {
    const gx = g.x ?? 0;
    const gy = g.y ?? 0;
    if (g.id.startsWith('cluster:')) {
      groups.push({
        id: g.id.slice('cluster:'.length),
        x: gx,
        y: gy,
        w: g.width ?? 0,
        h: g.height ?? 0,
      });
      for (const c of g.children ?? []) {
        boxes.push({
          id: c.id,
          ...labelOf(c.id),
          x: gx + (c.x ?? 0),
          y: gy + (c.y ?? 0),
          w: c.width ?? NODE_W,
          h: c.height ?? NODE_H,
        });
      }
    } else {
      boxes.push({
        id: g.id,
        ...labelOf(g.id),
        x: gx,
        y: gy,
        w: g.width ?? NODE_W,
        h: g.height ?? NODE_H,
      });
    }
  }
  return { key, boxes, groups, width: out.width ?? 400, height: out.height ?? 200 };
}

/**
 * The service map of one namespace across clusters, in the manner of Hubble UI: workloads
 * grouped by cluster, an edge per (source, destination) with flows in the window, coloured,
 * dashed and labelled by the latest verdict. Edges are focusable: Enter or a click shows
 * their recent flows.
 */
export function ServiceMap({
  snapshot,
  flows,
}: {
  snapshot: UiSnapshot;
  flows: readonly UiFlowRow[];
}) {
  const namespaces = useMemo(() => {
    const s = new Set(snapshot.workloads.map((w) => w.namespace));
    for (const e of snapshot.edges) {
      const ns = namespaceOf(e.from) ?? namespaceOf(e.to);
      if (ns !== undefined) s.add(ns);
    }
    return [...s].sort();
  }, [snapshot]);
  const [ns, setNs] = useState<string>('default');
  const [selected, setSelected] = useState<string | undefined>(undefined);
  const [layout, setLayout] = useState<Layout | undefined>(undefined);
  const namespace = namespaces.includes(ns) ? ns : (namespaces[0] ?? 'default');

  const edges = snapshot.edges.filter(
    (e) => namespaceOf(e.from) === namespace || namespaceOf(e.to) === namespace,
  );
  const nodeMap = new Map<string, number>();
  for (const w of snapshot.workloads) {
    if (w.namespace === namespace)
      nodeMap.set(`${w.cluster}/${w.namespace}/${w.name}`, w.pods.length);
  }
  for (const e of edges) {
    if (!nodeMap.has(e.from)) nodeMap.set(e.from, 0);
    if (!nodeMap.has(e.to)) nodeMap.set(e.to, 0);
  }
  const nodes = [...nodeMap.entries()]
    .map(([id, pods]) => ({ id, pods }))
    .sort((a, b) => (a.id < b.id ? -1 : 1));
  const structure = `${namespace}|${nodes.map((n) => n.id).join(',')}|${edges.map((e) => e.id).join(',')}`;

  useEffect(() => {
    let live = true;
    layoutOf(structure, nodes, edges)
      .then((l) => {
        if (live) setLayout(l);
      })
      .catch(() => {
        // A failed layout keeps the previous picture; the edge list below stays current.
      });
    return () => {
      live = false;
    };
    // Only a change of structure needs a new layout; rates and verdicts are drawn from props.
  }, [structure]);

  const pods = new Map(nodes.map((n) => [n.id, n.pods]));
  const boxes = new Map((layout?.boxes ?? []).map((b) => [b.id, b]));
  const selectedEdge = edges.find((e) => e.id === selected);
  const edgeFlows =
    selectedEdge === undefined
      ? []
      : flows
          .filter((f) => {
            const { from, to } = edgeOf(f, f.cluster);
            return edgeId(from, to) === selectedEdge.id;
          })
          .slice(-20)
          .reverse();

  const edgeText = (e: UiEdge): string =>
    `${e.from} → ${e.to}: ${VERDICT_TEXT[e.verdict]}, ${e.rate}/s (forwarded ${e.counts.forwarded}, policy-dropped ${e.counts.dropped}, no backend ${e.counts['no-backend']} in ${snapshot.windowSec} s)`;

  return (
    <section id="service-map" aria-labelledby="smap-h">
      <h2 id="smap-h">Service map</h2>
      <label>
        Namespace{' '}
        <select
          value={namespace}
          onChange={(ev) => {
            setNs(ev.currentTarget.value);
            setSelected(undefined);
          }}
          data-testid="namespace"
        >
          {namespaces.map((n) => (
            <option key={n} value={n}>
              {n}
            </option>
          ))}
        </select>
      </label>{' '}
      <span class="hint">
        flows of the last {snapshot.windowSec} s; Tab to an edge, Enter for its flows
      </span>
      <div class="legend" aria-hidden="true">
        <span class="edge-key edge-forwarded">— forwarded</span>
        <span class="edge-key edge-dropped">- - policy-dropped</span>
        <span class="edge-key edge-no-backend">··· no backend</span>
      </div>
      {layout === undefined ? (
        <p>Laying out…</p>
      ) : (
        <svg
          class="service-map"
          viewBox={`0 0 ${Math.max(layout.width, 300)} ${Math.max(layout.height, 120)}`}
          width={Math.max(layout.width, 300)}
          height={Math.max(layout.height, 120)}
          role="group"
          aria-label={`service map of namespace ${namespace}`}
          data-testid="service-map"
        >
          <defs>
            {(['forwarded', 'dropped', 'no-backend'] as const).map((v) => (
              <marker
                key={v}
                id={`arrow-${v}`}
                viewBox="0 0 10 10"
                refX="10"
                refY="5"
                markerWidth="7"
                markerHeight="7"
                orient="auto-start-reverse"
                class={`marker-${v}`}
              >
                <path d="M 0 0 L 10 5 L 0 10 z" />
              </marker>
            ))}
          </defs>
          {layout.groups.map((g) => (
            <g key={g.id} class="smap-cluster">
              <rect x={g.x} y={g.y} width={g.w} height={g.h} rx="8" />
              <text x={g.x + 10} y={g.y + 19}>
                {g.id}
              </text>
            </g>
          ))}
          {edges.map((e) => {
            const a = boxes.get(e.from);
            const b = boxes.get(e.to);
            if (a === undefined || b === undefined) return null;
            const { d, lx, ly } = edgePath(a, b);
            const text = edgeText(e);
            return (
              <g
                key={e.id}
                class={`edge edge-${e.verdict}${selected === e.id ? ' selected' : ''}`}
                data-testid="edge"
                data-from={e.from}
                data-to={e.to}
                data-verdict={e.verdict}
                // Lower case: on SVG elements Preact sets attributes verbatim, and SVG's are case-sensitive.
                tabindex={0}
                role="button"
                aria-label={text}
                aria-pressed={selected === e.id}
                onClick={() => setSelected(selected === e.id ? undefined : e.id)}
                onKeyDown={(ev) => {
                  if (ev.key === 'Enter' || ev.key === ' ') {
                    ev.preventDefault();
                    setSelected(selected === e.id ? undefined : e.id);
                  }
                }}
              >
                <title>{text}</title>
                <path d={d} class="edge-hit" />
                <path d={d} class="edge-line" marker-end={`url(#arrow-${e.verdict})`} />
                <text x={lx} y={ly} text-anchor="middle" class="edge-label">
                  {`${e.rate}/s ${VERDICT_TEXT[e.verdict]}`}
                </text>
              </g>
            );
          })}
          {[...boxes.values()].map((b) => (
            <g key={b.id} class={`box box-${b.kind}`} data-testid="workload" data-key={b.id}>
              <rect x={b.x} y={b.y} width={b.w} height={b.h} rx="6" />
              <text x={b.x + 8} y={b.y + 17} class="box-name">
                {b.label}
              </text>
              <text x={b.x + 8} y={b.y + 32} class="box-sub">
                {b.kind === 'workload' ? `${pods.get(b.id) ?? 0} pod(s)` : b.sub}
              </text>
            </g>
          ))}
        </svg>
      )}
      <ul class="edge-list" aria-label="edges in words">
        {edges.map((e) => (
          <li key={e.id} class={`edge-item edge-item-${e.verdict}`}>
            {edgeText(e)}
          </li>
        ))}
        {edges.length === 0 && (
          <li>No flows in this namespace in the last {snapshot.windowSec} s.</li>
        )}
      </ul>
      {selectedEdge !== undefined && (
        <div
          class="edge-flows"
          role="region"
          aria-label="recent flows of the selected edge"
          data-testid="edge-flows"
        >
          <h3>
            Recent flows {selectedEdge.from} → {selectedEdge.to}{' '}
            <button type="button" onClick={() => setSelected(undefined)}>
              Close
            </button>
          </h3>
          <ol>
            {edgeFlows.map((f) => (
              <li key={f.id}>{flowSummary(f)}</li>
            ))}
            {edgeFlows.length === 0 && <li>None of the flows kept by the page.</li>}
          </ol>
        </div>
      )}
    </section>
  );
}
