/**
 * Benchmark entry point: `npm run bench -- <name> [options]`. Each benchmark
 * prints a table and a final JSON line. Benchmarks are not part of `npm test`.
 */
const benches: Record<string, () => Promise<{ main: (args: string[]) => Promise<void> }>> = {
  kvstore: () => import('./kvstore.js'),
  propagation: () => import('./propagation.js'),
  bootstrap: () => import('./bootstrap.js'),
  services: () => import('./services.js'),
  kvstoremesh: () => import('./kvstoremesh.js'),
  datapath: () => import('./datapath.js'),
  'cli-start': () => import('./cli-start.js'),
  policy: () => import('./policy.js'),
  failover: () => import('./failover.js'),
  mcsapi: () => import('./mcsapi.js'),
  'mcsapi-dns': () => import('./mcsapi-dns.js'),
  kubeapi: () => import('./kubeapi.js'),
  k8smode: () => import('./k8smode.js'),
  tls: () => import('./tls.js'),
  ui: () => import('./ui.js'),
};

const [name, ...args] = process.argv.slice(2);
const load = name === undefined ? undefined : benches[name];
if (load === undefined) {
  console.error(`usage: npm run bench -- <${Object.keys(benches).join('|')}> [options]`);
  process.exit(2);
}
const mod = await load();
await mod.main(args);
