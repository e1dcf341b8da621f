import { tabwrite } from '../lib/table.js';
import type { MeshState } from './mesh-state.js';
import { DEFAULT_STATE_DIR } from './state-dir.js';

/** What `up` prints once the mesh is ready (and `clustermesh mesh` later): what runs where. */
export function formatMeshSummary(
  state: MeshState,
  opts: { stateDir: string; readyMs?: number | undefined; example?: string | undefined },
): string {
  const n = state.clusters.length;
  const m = state.clusters[0]?.agents.length ?? 0;
  const lines: string[] = [];
  const mode = `${state.kvstore} kvstore${state.kvstoremesh ? ', KVStoreMesh' : ''}${state.k8sMode === true ? ', Kubernetes mode' : ''}`;
  const ready = opts.readyMs === undefined ? '' : ` ready in ${(opts.readyMs / 1000).toFixed(1)} s`;
  lines.push(
    `clustermesh: ${n} cluster${n === 1 ? '' : 's'} × ${m} node${m === 1 ? '' : 's'} (${mode})${ready}`,
  );
  lines.push('');
  const rows: string[][] = [['CLUSTER', 'ID', 'KVSTORE', 'DNS', 'PODS', 'SERVICES']];
  for (const c of state.clusters) {
    rows.push([c.name, String(c.id), c.kvstore, c.dns, c.podCIDR, c.serviceCIDR]);
  }
  lines.push(...tabwrite(rows).trimEnd().split('\n'));
  lines.push('');
  const agents: string[][] = [['NODE', 'IP', 'POD CIDR', 'AGENT API']];
  for (const c of state.clusters) {
    for (const a of c.agents) agents.push([`${c.name}/${a.node}`, a.ip, a.podCIDR, a.api]);
  }
  lines.push(...tabwrite(agents).trimEnd().split('\n'));
  lines.push('');
  const apiservers = state.clusters.filter((c) => c.apiserver !== undefined);
  if (apiservers.length > 0) {
    const rows: string[][] = [['APISERVER', 'HEALTH', 'METRICS', 'VMS']];
    for (const c of apiservers) {
      rows.push([c.name, c.apiserver?.health ?? '', c.apiserver?.metrics ?? '-', c.vmCIDR ?? '-']);
    }
    lines.push(...tabwrite(rows).trimEnd().split('\n'));
    lines.push('');
  }
  const first = state.clusters[0];
  const dir = opts.stateDir === DEFAULT_STATE_DIR ? '' : ` --state-dir ${opts.stateDir}`;
  lines.push(`state: ${opts.stateDir}/mesh.json (control API ${state.control})`);
  if (state.ui !== undefined) lines.push(`ui: ${state.ui}/ (clustermesh ui${dir})`);
  if (state.kubeconfig !== undefined) lines.push(`kubectl: export KUBECONFIG=${state.kubeconfig}`);
  lines.push('try:');
  // Views ask the first agent unless --node names another.
  lines.push(`  clustermesh status${dir}`);
  const other = state.clusters.flatMap((c) => c.agents.map((a) => `${c.name}/${a.node}`))[1];
  lines.push(`  clustermesh node list${dir}${other === undefined ? '' : ` --node ${other}`}`);
  if (opts.example === 'rebel-base' && first !== undefined) {
    lines.push(`  clustermesh exec${dir} ${first.name}/x-wing -- curl -s rebel-base`);
    lines.push(`  clustermesh observe${dir} --last 5`);
  } else if (first !== undefined) {
    lines.push(`  clustermesh apply${dir} --cluster ${first.name} -f app.yaml`);
  }
  if (state.kubeconfig !== undefined && first !== undefined) {
    lines.push(`  kubectl --context ${first.name} get pods -o wide`);
  }
  if (opts.readyMs !== undefined) lines.push('Press Ctrl-C to stop.');
  return `${lines.join('\n')}\n`;
}
