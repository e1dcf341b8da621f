import { useEffect, useState } from 'preact/hooks';
import type { UiSnapshot } from '../src/ui/model.js';

interface DirectionPolicies {
  readonly enforced: boolean;
  readonly defaultDeny: boolean;
  readonly policies: readonly {
    kind: string;
    namespace: string;
    name: string;
    actions: string[];
  }[];
}

interface WorkloadPolicies {
  readonly pod: string;
  readonly endpoint: number | null;
  readonly ingress: DirectionPolicies | null;
  readonly egress: DirectionPolicies | null;
}

interface TraceAnswer {
  readonly command: string;
  readonly text: string;
  readonly result: { readonly verdict?: string };
}

async function getJson<T>(url: string, init?: RequestInit): Promise<T> {
  const res = await fetch(url, init);
  const body = (await res.json()) as T | { error?: { message?: string } };
  if (!res.ok) {
    const msg = (body as { error?: { message?: string } }).error?.message;
    throw new Error(msg ?? `HTTP ${res.status}`);
  }
  return body as T;
}

function Direction({ name, d }: { name: string; d: DirectionPolicies | null }) {
  if (d === null) return <p>{name}: no endpoint yet</p>;
  return (
    <div>
      <h4>
        {name}: {d.enforced ? 'enforced' : 'not enforced (no policy selects it)'}
        {d.enforced && d.defaultDeny ? ', default deny' : ''}
      </h4>
      <ul>
        {d.policies.map((p) => (
          <li key={`${p.kind}/${p.namespace}/${p.name}`}>
            {p.kind} {p.namespace === '' ? '' : `${p.namespace}/`}
            {p.name} ({p.actions.join(', ') || 'allow'})
          </li>
        ))}
        {d.policies.length === 0 && <li>no rule</li>}
      </ul>
    </div>
  );
}

/** Policies selecting a workload, the mesh's policies, and a form for `policy trace`. */
export function PolicyPanel({ snapshot }: { snapshot: UiSnapshot }) {
  const keys = snapshot.workloads.map((w) => `${w.cluster}/${w.namespace}/${w.name}`);
  const [workload, setWorkload] = useState<string>('');
  const [details, setDetails] = useState<WorkloadPolicies | string | undefined>(undefined);
  const [src, setSrc] = useState('');
  const [dst, setDst] = useState('');
  const [dport, setDport] = useState('80/TCP');
  const [trace, setTrace] = useState<TraceAnswer | string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const chosen = keys.includes(workload) ? workload : (keys[0] ?? '');
  const policyCount = snapshot.policies.length;

  useEffect(() => {
    if (chosen === '') return;
    let live = true;
    const [cluster = '', namespace = '', name = ''] = chosen.split('/');
    const q = new URLSearchParams({ cluster, namespace, name });
    getJson<WorkloadPolicies>(`/api/workload?${q.toString()}`)
      .then((d) => {
        if (live) setDetails(d);
      })
      .catch((err: unknown) => {
        if (live) setDetails(err instanceof Error ? err.message : String(err));
      });
    return () => {
      live = false;
    };
  }, [chosen, policyCount]);

  const option = (k: string) => (
    <option key={k} value={k}>
      {k}
    </option>
  );
  const runTrace = async (): Promise<void> => {
    setBusy(true);
    try {
      const from = src !== '' ? src : (keys[0] ?? '');
      const to = dst !== '' ? dst : (keys[0] ?? '');
      setTrace(
        await getJson<TraceAnswer>('/api/trace', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ src: from, dst: to, dport }),
        }),
      );
    } catch (err) {
      setTrace(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section id="policy" aria-labelledby="pol-h">
      <h2 id="pol-h">Policy</h2>
      <div class="cols">
        <div>
          <label>
            Workload{' '}
            <select
              value={chosen}
              onChange={(ev) => setWorkload(ev.currentTarget.value)}
              data-testid="policy-workload"
            >
              {keys.map(option)}
            </select>
          </label>
          {details === undefined ? (
            <p>…</p>
          ) : typeof details === 'string' ? (
            <p role="alert">{details}</p>
          ) : (
            <div data-testid="workload-policies">
              <p>
                pod {details.pod}
                {details.endpoint === null ? '' : `, endpoint ${details.endpoint}`}
              </p>
              <Direction name="ingress" d={details.ingress} />
              <Direction name="egress" d={details.egress} />
            </div>
          )}
          <h3>Policies in the mesh ({policyCount})</h3>
          <ul data-testid="policies">
            {snapshot.policies.map((p) => (
              <li key={`${p.cluster}/${p.kind}/${p.namespace}/${p.name}`}>
                {p.cluster}: {p.kind} {p.namespace === '' ? '' : `${p.namespace}/`}
                {p.name}
              </li>
            ))}
          </ul>
        </div>
        <form
          class="trace"
          aria-label="policy trace"
          onSubmit={(ev) => {
            ev.preventDefault();
            void runTrace();
          }}
        >
          <h3>Trace a connection</h3>
          <label>
            From{' '}
            <select
              value={src !== '' ? src : (keys[0] ?? '')}
              onChange={(ev) => setSrc(ev.currentTarget.value)}
              data-testid="trace-src"
            >
              {keys.map(option)}
            </select>
          </label>
          <label>
            To{' '}
            <select
              value={dst !== '' ? dst : (keys[0] ?? '')}
              onChange={(ev) => setDst(ev.currentTarget.value)}
              data-testid="trace-dst"
            >
              {keys.map(option)}
            </select>
          </label>
          <label>
            Port{' '}
            <input
              value={dport}
              size={8}
              onInput={(ev) => setDport(ev.currentTarget.value)}
              data-testid="trace-port"
            />
          </label>
          <button type="submit" disabled={busy}>
            {busy ? 'Tracing…' : 'Trace'}
          </button>
          {trace !== undefined &&
            (typeof trace === 'string' ? (
              <p role="alert" data-testid="trace-error">
                {trace}
              </p>
            ) : (
              <div data-testid="trace-result" data-verdict={trace.result.verdict ?? ''}>
                <p>
                  <strong>{trace.result.verdict ?? '?'}</strong> — <code>{trace.command}</code>
                </p>
                <pre>{trace.text}</pre>
              </div>
            ))}
        </form>
      </div>
    </section>
  );
}
