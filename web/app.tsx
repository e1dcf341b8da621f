import { Component, type ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { UiFlowRow, UiSnapshot } from '../src/ui/model.js';
import { FlowsPanel } from './flows.js';
import { MeshMap } from './mesh-map.js';
import { PolicyPanel } from './policy.js';
import { ServiceMap } from './service-map.js';
import { ServicesPanel } from './services.js';

/** Flows the page keeps (newest last); the server keeps more. */
const MAX_FLOWS = 2_000;

/**
 * Renders only when the snapshot changes: panels that show no flows skip the redraws that
 * a flood of flows causes.
 */
class SnapshotOnly extends Component<{
  snapshot: UiSnapshot;
  render: (s: UiSnapshot) => ComponentChildren;
}> {
  override shouldComponentUpdate(next: { snapshot: UiSnapshot }): boolean {
    return next.snapshot !== this.props.snapshot;
  }

  override render(): ComponentChildren {
    return this.props.render(this.props.snapshot);
  }
}

export type StreamState = 'connecting' | 'live' | 'reconnecting';

/**
 * The page: one server-sent-events stream feeds every panel. Flows arriving between two
 * frames are applied once per animation frame, so a busy mesh costs one render per frame.
 */
/** The snapshot the server put into the page, so the first paint needs no round trip. */
function initialSnapshot(): UiSnapshot | undefined {
  const text = document.getElementById('initial')?.textContent ?? '';
  try {
    return text === '' ? undefined : (JSON.parse(text) as UiSnapshot);
  } catch {
    return undefined;
  }
}

export function App() {
  const [snapshot, setSnapshot] = useState<UiSnapshot | undefined>(initialSnapshot);
  const [flows, setFlows] = useState<readonly UiFlowRow[]>([]);
  const [stream, setStream] = useState<StreamState>('connecting');
  const pending = useRef<{ flows: UiFlowRow[]; snapshot: UiSnapshot | undefined; frame: number }>({
    flows: [],
    snapshot: undefined,
    frame: 0,
  });

  useEffect(() => {
    const es = new EventSource('/api/events');
    const flush = (): void => {
      const p = pending.current;
      p.frame = 0;
      if (p.snapshot !== undefined) {
        const s = p.snapshot;
        p.snapshot = undefined;
        setSnapshot(s);
      }
      if (p.flows.length > 0) {
        const add = p.flows;
        p.flows = [];
        setFlows((old) => {
          const seen = new Set(old.map((f) => f.id));
          const next = [...old, ...add.filter((f) => !seen.has(f.id))];
          return next.length > MAX_FLOWS ? next.slice(-MAX_FLOWS) : next;
        });
      }
    };
    const later = (): void => {
      const p = pending.current;
      // Background tabs get no animation frames: a timer keeps them current.
      if (p.frame === 0) {
        p.frame = document.hidden ? window.setTimeout(flush, 250) : requestAnimationFrame(flush);
      }
    };
    es.addEventListener('open', () => {
      setStream('live');
    });
    es.addEventListener('error', () => {
      setStream('reconnecting');
    });
    es.addEventListener('snapshot', (ev: MessageEvent<string>) => {
      pending.current.snapshot = JSON.parse(ev.data) as UiSnapshot;
      later();
    });
    es.addEventListener('flows', (ev: MessageEvent<string>) => {
      pending.current.flows.push(...(JSON.parse(ev.data) as UiFlowRow[]));
      later();
    });
    return () => {
      es.close();
    };
  }, []);

  const streamText =
    stream === 'live' ? 'live' : stream === 'connecting' ? 'connecting…' : 'reconnecting…';
  return (
    <div class="page">
      <a class="skip" href="#flows">
        Skip to flows
      </a>
      <header class="top">
        <h1>clustermesh</h1>
        <nav aria-label="Sections">
          <a href="#mesh">Mesh</a>
          <a href="#service-map">Service map</a>
          <a href="#services">Global services</a>
          <a href="#flows">Flows</a>
          <a href="#policy">Policy</a>
        </nav>
        <p class={`stream stream-${stream}`} role="status" data-testid="stream">
          <span aria-hidden="true" class="dot" /> updates: {streamText}
          {snapshot !== undefined && snapshot.mesh.state === 'running'
            ? ` · ${snapshot.mesh.message} · ${snapshot.mesh.kvstore ?? ''} kvstore${snapshot.mesh.tls === true ? ' (TLS)' : ''}${snapshot.mesh.kvstoremesh === true ? ', KVStoreMesh' : ''}`
            : ''}
        </p>
      </header>
      {snapshot === undefined ? (
        <p>Waiting for the first update…</p>
      ) : snapshot.mesh.state === 'absent' ? (
        <p class="notice" role="status" data-testid="mesh-absent">
          No mesh yet: {snapshot.mesh.message}
        </p>
      ) : (
        <main>
          <SnapshotOnly snapshot={snapshot} render={(s) => <MeshMap snapshot={s} />} />
          <ServiceMap snapshot={snapshot} flows={flows} />
          <SnapshotOnly snapshot={snapshot} render={(s) => <ServicesPanel snapshot={s} />} />
          <FlowsPanel snapshot={snapshot} flows={flows} />
          <SnapshotOnly snapshot={snapshot} render={(s) => <PolicyPanel snapshot={s} />} />
        </main>
      )}
    </div>
  );
}
