import type { UiSnapshot } from '../src/ui/model.js';

/** Global services and MCS imports: each cluster's frontend, affinity and backends with health. */
export function ServicesPanel({ snapshot }: { snapshot: UiSnapshot }) {
  return (
    <section id="services" aria-labelledby="svc-h">
      <h2 id="svc-h">Global services and MCS imports</h2>
      {snapshot.services.length === 0 && <p>No global service or ServiceImport.</p>}
      {snapshot.services.map((s) => {
        const all = new Set(s.views.flatMap((v) => v.backends.map((b) => b.address)));
        return (
          <article
            key={`${s.namespace}/${s.name}`}
            class="service"
            data-testid={`service-${s.namespace}/${s.name}`}
            data-backends={all.size}
            aria-label={`${s.kind === 'mcs' ? 'ServiceImport' : 'global service'} ${s.namespace}/${s.name}, ${all.size} backends`}
          >
            <h3>
              {s.namespace}/{s.name}{' '}
              <span class="tag">{s.kind === 'mcs' ? 'MCS import' : 'global'}</span>{' '}
              <span class="hint">{all.size} backends across the mesh</span>
            </h3>
            <table>
              <thead>
                <tr>
                  <th scope="col">cluster</th>
                  <th scope="col">frontend</th>
                  <th scope="col">affinity</th>
                  <th scope="col">backends (cluster, health)</th>
                </tr>
              </thead>
              <tbody>
                {s.views.map((v) => (
                  <tr key={`${v.cluster}-${v.frontend}`}>
                    <td>{v.cluster}</td>
                    <td>{v.frontend}</td>
                    <td>{v.affinity}</td>
                    <td>
                      <ul class="backends">
                        {v.backends.map((b) => (
                          <li key={b.address} class={`backend backend-${b.health}`}>
                            <span
                              class={`badge badge-${b.health === 'healthy' ? 'ready' : 'failing'}`}
                            >
                              {b.health}
                            </span>{' '}
                            {b.address} ({b.cluster}
                            {b.preferred ? ', preferred' : ''}
                            {b.state !== 'active' ? `, ${b.state}` : ''})
                          </li>
                        ))}
                      </ul>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </article>
        );
      })}
    </section>
  );
}
