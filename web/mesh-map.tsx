import { useEffect } from 'preact/hooks';
import {
  ageText,
  type ConnectionState,
  type UiConnection,
  type UiSnapshot,
} from '../src/ui/model.js';

const STATE_TEXT: Record<ConnectionState, string> = {
  ready: 'ready',
  connecting: 'connecting',
  failing: 'failing',
  unknown: 'unknown',
};

const RANK: Record<ConnectionState, number> = { ready: 0, unknown: 1, connecting: 2, failing: 3 };

function worst(a: ConnectionState, b: ConnectionState): ConnectionState {
  return RANK[a] >= RANK[b] ? a : b;
}

function connText(c: UiConnection): string {
  return `${c.from} → ${c.to}: ${STATE_TEXT[c.state]} (${c.ready}/${c.agents} agents), ${ageText(c.heartbeatAgeMs)}, ${c.syncText}${c.reason !== '' ? ` — ${c.reason}` : ''}`;
}

/**
 * Clusters on a circle with their nodes; one line per pair, coloured (and dashed, and
 * labelled) by the worse of its two directions. The table below says the same in words.
 */
export function MeshMap({ snapshot }: { snapshot: UiSnapshot }) {
  const clusters = snapshot.clusters;
  const n = clusters.length;
  const boxW = 170;
  const rowH = 18;
  const maxNodes = Math.max(1, ...clusters.map((c) => c.nodes.length));
  const boxH = 34 + rowH * maxNodes;
  const width = n <= 2 ? 760 : n <= 4 ? 820 : 1000;
  const radius = n <= 1 ? 0 : n === 2 ? 250 : Math.min(width / 2 - boxW / 2 - 10, 90 + n * 22);
  const height = n <= 2 ? boxH + 120 : 2 * radius + boxH + 60;
  const cx = width / 2;
  const cy = height / 2;
  const pos = new Map(
    clusters.map((c, i) => {
      const a = n === 2 ? Math.PI * i : (2 * Math.PI * i) / Math.max(1, n) - Math.PI / 2;
      return [
        c.name,
        { x: cx + radius * Math.cos(a + (n === 2 ? Math.PI : 0)), y: cy + radius * Math.sin(a) },
      ];
    }),
  );
  const pairs: { a: string; b: string; state: ConnectionState; conns: UiConnection[] }[] = [];
  for (const c of snapshot.connections) {
    const [a, b] = c.from < c.to ? [c.from, c.to] : [c.to, c.from];
    let p = pairs.find((x) => x.a === a && x.b === b);
    if (p === undefined) {
      p = { a, b, state: 'ready', conns: [] };
      pairs.push(p);
    }
    p.state = p.conns.length === 0 ? c.state : worst(p.state, c.state);
    p.conns.push(c);
  }
  const labelled = n <= 4;
  useEffect(() => {
    // The first meaningful paint, for the benchmark (bench/ui.ts): the frame after the map.
    requestAnimationFrame(() => {
      if (performance.getEntriesByName('mesh-map-painted').length === 0) {
        performance.mark('mesh-map-painted');
      }
    });
  }, []);
  return (
    <section id="mesh" aria-labelledby="mesh-h">
      <h2 id="mesh-h">Mesh</h2>
      <svg
        class="mesh-map"
        viewBox={`0 0 ${width} ${height}`}
        width={width}
        height={height}
        role="img"
        aria-label={`${n} clusters; ${pairs.filter((p) => p.state === 'ready').length} of ${pairs.length} connections ready`}
        data-testid="mesh-map"
      >
        {pairs.map((p) => {
          const pa = pos.get(p.a);
          const pb = pos.get(p.b);
          if (pa === undefined || pb === undefined) return null;
          const mx = (pa.x + pb.x) / 2;
          const my = (pa.y + pb.y) / 2;
          return (
            <g
              key={`${p.a}-${p.b}`}
              class={`conn conn-${p.state}`}
              data-testid={`pair-${p.a}-${p.b}`}
              data-state={p.state}
            >
              <line x1={pa.x} y1={pa.y} x2={pb.x} y2={pb.y} />
              {labelled &&
                p.conns.map((c, i) => (
                  <text
                    key={c.from}
                    x={mx}
                    y={my - 8 + i * 32 - (p.conns.length - 1) * 12}
                    text-anchor="middle"
                    class="conn-label"
                  >
                    <tspan x={mx}>{`${c.from} → ${c.to}: ${STATE_TEXT[c.state]}`}</tspan>
                    <tspan x={mx} dy="13">{`${ageText(c.heartbeatAgeMs)} · ${c.syncText}`}</tspan>
                  </text>
                ))}
            </g>
          );
        })}
        {clusters.map((c) => {
          const p = pos.get(c.name);
          if (p === undefined) return null;
          const h = 34 + rowH * c.nodes.length;
          return (
            <g
              key={c.name}
              class="cluster"
              data-testid={`cluster-${c.name}`}
              transform={`translate(${p.x - boxW / 2},${p.y - h / 2})`}
            >
              <rect width={boxW} height={h} rx="8" />
              <text x="10" y="20" class="cluster-name">{`${c.name} (id ${c.id})`}</text>
              {c.nodes.map((nd, i) => (
                <text
                  key={nd.name}
                  x="14"
                  y={38 + i * rowH}
                  class={nd.up ? 'node-up' : 'node-down'}
                >
                  {`${nd.up ? '●' : '✕'} ${nd.name} ${nd.up ? 'up' : 'down'}`}
                </text>
              ))}
            </g>
          );
        })}
      </svg>
      <table class="conn-table" data-testid="connections">
        <caption>Connections, as each cluster's agents see the other clusters</caption>
        <thead>
          <tr>
            <th scope="col">from</th>
            <th scope="col">to</th>
            <th scope="col">state</th>
            <th scope="col">agents ready</th>
            <th scope="col">heartbeat</th>
            <th scope="col">sync</th>
            <th scope="col">remote holds</th>
            <th scope="col">reason</th>
          </tr>
        </thead>
        <tbody>
          {snapshot.connections.map((c) => (
            <tr
              key={`${c.from}-${c.to}`}
              data-testid={`connection-${c.from}-${c.to}`}
              data-state={c.state}
              tabIndex={0}
              aria-label={connText(c)}
            >
              <td>{c.from}</td>
              <td>{c.to}</td>
              <td>
                <span class={`badge badge-${c.state}`}>{STATE_TEXT[c.state]}</span>
              </td>
              <td>{`${c.ready}/${c.agents}`}</td>
              <td>{ageText(c.heartbeatAgeMs)}</td>
              <td>{c.syncText}</td>
              <td>{`${c.numNodes} nodes, ${c.numEndpoints} endpoints, ${c.numServices} services`}</td>
              <td class="reason">{c.reason}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {snapshot.connections.length === 0 && <p>No connections: the clusters are not meshed.</p>}
    </section>
  );
}
