import { useState } from 'preact/hooks';
import {
  edgeVerdictOf,
  flowMatches,
  type FlowFilter,
  type UiFlowEndpoint,
  type UiFlowRow,
  type UiSnapshot,
} from '../src/ui/model.js';

function endpointText(e: UiFlowEndpoint): string {
  const reserved = e.labels?.find((l) => l.startsWith('reserved:'));
  const name =
    e.pod !== undefined
      ? `${e.namespace ?? 'default'}/${e.pod}`
      : reserved !== undefined
        ? reserved.slice('reserved:'.length)
        : '';
  const where = `${e.ip}:${e.port}`;
  const cluster = e.cluster === undefined ? '' : ` (${e.cluster})`;
  return name === '' ? `${where}${cluster}` : `${name}${cluster} ${where}`;
}

export function destinationText(f: UiFlowRow): string {
  const dst =
    f.service !== undefined
      ? `${f.service.namespace}/${f.service.name} (${f.destination.ip}:${f.destination.port})`
      : endpointText(f.destination);
  return f.backend !== undefined ? `${dst} => ${endpointText(f.backend)}` : dst;
}

export function verdictText(f: UiFlowRow): string {
  if (f.verdict === 'FORWARDED') return 'FORWARDED';
  const reason =
    f.dropReason === 'POLICY_DENIED'
      ? 'Policy denied'
      : f.dropReason === 'POLICY_DENY'
        ? 'Policy denied by denylist'
        : (f.dropReason ?? 'unknown');
  return `DROPPED (${reason})`;
}

/** One line, as `clustermesh observe` prints it (without the date). */
export function flowSummary(f: UiFlowRow): string {
  return `${f.time.slice(11, 23)} [${f.node}] ${endpointText(f.source)} -> ${destinationText(f)} ${f.direction} ${verdictText(f)}`;
}

const SHOWN = 200;

/** The live flows table, with the filters of `clustermesh observe`. */
export function FlowsPanel({
  snapshot,
  flows,
}: {
  snapshot: UiSnapshot;
  flows: readonly UiFlowRow[];
}) {
  const [filter, setFilter] = useState<FlowFilter>({});
  const [paused, setPaused] = useState<readonly UiFlowRow[] | undefined>(undefined);
  const source = paused ?? flows;
  const rows: UiFlowRow[] = [];
  for (let i = source.length - 1; i >= 0 && rows.length < SHOWN; i--) {
    const f = source[i];
    if (f !== undefined && flowMatches(f, filter)) rows.push(f);
  }
  const namespaces = [...new Set(snapshot.workloads.map((w) => w.namespace))].sort();
  const set = (patch: Partial<FlowFilter>): void => {
    setFilter((old) => ({ ...old, ...patch }));
  };
  return (
    <section id="flows" aria-labelledby="flows-h">
      <h2 id="flows-h">Flows</h2>
      <form class="filters" onSubmit={(ev) => ev.preventDefault()} aria-label="flow filters">
        <label>
          Cluster{' '}
          <select
            value={filter.cluster ?? ''}
            onChange={(ev) => set({ cluster: ev.currentTarget.value || undefined })}
            data-testid="filter-cluster"
          >
            <option value="">any</option>
            {snapshot.clusters.map((c) => (
              <option key={c.name} value={c.name}>
                {c.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Namespace{' '}
          <select
            value={filter.namespace ?? ''}
            onChange={(ev) => set({ namespace: ev.currentTarget.value || undefined })}
          >
            <option value="">any</option>
            {namespaces.map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </label>
        <label>
          Pod{' '}
          <input
            type="search"
            value={filter.pod ?? ''}
            placeholder="name or prefix"
            onInput={(ev) => set({ pod: ev.currentTarget.value || undefined })}
            data-testid="filter-pod"
          />
        </label>
        <label>
          Verdict{' '}
          <select
            value={filter.verdict ?? ''}
            onChange={(ev) => {
              const v = ev.currentTarget.value;
              set({ verdict: v === 'FORWARDED' || v === 'DROPPED' ? v : undefined });
            }}
            data-testid="filter-verdict"
          >
            <option value="">any</option>
            <option value="FORWARDED">FORWARDED</option>
            <option value="DROPPED">DROPPED</option>
          </select>
        </label>
        <label>
          Type{' '}
          <select
            value={filter.type ?? ''}
            onChange={(ev) => {
              const v = ev.currentTarget.value;
              set({
                type: v === 'policy-verdict' || v === 'drop' || v === 'trace' ? v : undefined,
              });
            }}
            data-testid="filter-type"
          >
            <option value="">any</option>
            <option value="policy-verdict">policy-verdict</option>
            <option value="drop">drop</option>
            <option value="trace">trace</option>
          </select>
        </label>
        <button
          type="button"
          onClick={() => setPaused(paused === undefined ? [...flows] : undefined)}
          aria-pressed={paused !== undefined}
        >
          {paused === undefined ? 'Pause' : 'Resume'}
        </button>
        <span role="status" class="hint">
          {rows.length} shown{paused !== undefined ? ' (paused)' : ''} of {source.length} kept
        </span>
      </form>
      <div class="table-wrap">
        <table class="flows" data-testid="flows">
          <thead>
            <tr>
              <th scope="col">time</th>
              <th scope="col">node</th>
              <th scope="col">source</th>
              <th scope="col">destination</th>
              <th scope="col">dir</th>
              <th scope="col">verdict</th>
              <th scope="col">policy</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((f) => {
              const by = [
                ...(f.egress_allowed_by ?? []),
                ...(f.ingress_allowed_by ?? []),
                ...(f.egress_denied_by ?? []),
                ...(f.ingress_denied_by ?? []),
              ];
              return (
                <tr
                  key={f.id}
                  class={`flow flow-${edgeVerdictOf(f)}`}
                  data-testid="flow"
                  data-verdict={f.verdict}
                >
                  <td>{f.time.slice(11, 23)}</td>
                  <td>{f.node}</td>
                  <td>{endpointText(f.source)}</td>
                  <td>{destinationText(f)}</td>
                  <td>{f.direction}</td>
                  <td>
                    <span class={`badge badge-${edgeVerdictOf(f)}`}>{verdictText(f)}</span>
                  </td>
                  <td>{by.map((p) => `${p.name} (${p.kind})`).join(', ')}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </section>
  );
}
