import { tabwrite } from '../lib/table.js';
import type { CiliumExternalWorkload } from '../registry/objects.js';
import type { RegistryObject } from '../registry/types.js';

/** `vm status`: one row per workload, Cilium CLI style. */
export function formatVmStatus(objects: readonly RegistryObject[]): string {
  if (objects.length === 0) return 'No external workloads\n';
  const rows = [['NAME', 'IPV4-ALLOC-CIDR', 'IP', 'IDENTITY', 'STATUS', 'LABELS']];
  for (const o of objects as readonly CiliumExternalWorkload[]) {
    const st = o.status;
    const state =
      st?.connected === true
        ? 'connected'
        : st?.registered === true
          ? 'disconnected'
          : 'waiting for registration';
    const labels = Object.entries(o.metadata.labels ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .sort()
      .join(',');
    rows.push([
      o.metadata.name,
      o.spec['ipv4-alloc-cidr'] ?? '-',
      st?.ip === undefined || st.ip === '' ? '-' : st.ip,
      st?.id === undefined ? '-' : String(st.id),
      state,
      labels === '' ? '-' : labels,
    ]);
  }
  let out = tabwrite(rows);
  for (const o of objects as readonly CiliumExternalWorkload[]) {
    const refused = o.status?.refused;
    if (refused !== undefined)
      out += `⚠️  ${o.metadata.name}: last refused registration: ${refused}\n`;
  }
  return out;
}
