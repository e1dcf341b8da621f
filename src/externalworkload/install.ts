/**
 * `vm install FILE`: the shell script a VM runs to join the cluster. It holds the
 * cluster's CA, the `externalworkload` client certificate and key, the etcd endpoint (with
 * the address its mesh name stands for) and the join command; `vm run` reads the same
 * inputs back from it, so the local mesh's VMs start exactly as the script would.
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HOST_ALIASES_FILE, formatHostAliases } from '../kvstore/host-aliases.js';
import { formatEtcdConfig } from '../kvstore/config.js';
import { ClusterMeshError, ErrorCode } from '../lib/errors.js';

export interface JoinInputs {
  readonly cluster: string;
  readonly clusterId: number;
  /** The etcd client URL: `https://<cluster>.mesh.cilium.io:2379`, or plain http. */
  readonly endpoint: string;
  /** The address the endpoint's host name stands for (a host alias), if any. */
  readonly etcdIP?: string | undefined;
  /** The CA and the `externalworkload` certificate and key (PEM); absent without TLS. */
  readonly tls?: { readonly ca: string; readonly cert: string; readonly key: string } | undefined;
}

const MARK = {
  ca: 'CLUSTERMESH_CA_EOF',
  cert: 'CLUSTERMESH_CERT_EOF',
  key: 'CLUSTERMESH_KEY_EOF',
} as const;

function quote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function installScript(i: JoinInputs): string {
  const host = new URL(i.endpoint).hostname;
  const lines = [
    '#!/bin/sh',
    `# Joins this machine to cluster ${i.cluster} as an external workload (clustermesh vm install).`,
    '# Usage: VM_NAME=<name> VM_IP=<address> sh install-external-workload.sh',
    '# The name must be a CiliumExternalWorkload of the cluster (clustermesh vm create NAME).',
    'set -eu',
    `CLUSTER_NAME=${quote(i.cluster)}`,
    `CLUSTER_ID=${quote(String(i.clusterId))}`,
    `CLUSTER_ADDR=${quote(i.endpoint)}`,
    `CLUSTER_ETCD_IP=${quote(i.etcdIP ?? '')}`,
    'VM_NAME="${VM_NAME:-$(hostname)}"',
    'VM_IP="${VM_IP:?set VM_IP to the address of this machine}"',
    'DIR="${CLUSTERMESH_ETCD_DIR:-/var/lib/clustermesh/etcd}"',
    'mkdir -p "$DIR"',
  ];
  if (i.tls !== undefined) {
    lines.push(
      `cat > "$DIR/ca.crt" <<'${MARK.ca}'`,
      i.tls.ca.trimEnd(),
      MARK.ca,
      `cat > "$DIR/tls.crt" <<'${MARK.cert}'`,
      i.tls.cert.trimEnd(),
      MARK.cert,
      '(umask 077; cat > "$DIR/tls.key") <<' + `'${MARK.key}'`,
      i.tls.key.trimEnd(),
      MARK.key,
    );
  }
  lines.push(
    'if [ -n "$CLUSTER_ETCD_IP" ]; then',
    `  printf '%s\\n' "- ip: $CLUSTER_ETCD_IP" "  hostnames: [${host}]" > "$DIR/${HOST_ALIASES_FILE}"`,
    'fi',
    '{',
    '  echo "endpoints:"',
    '  echo "- $CLUSTER_ADDR"',
  );
  if (i.tls !== undefined) {
    lines.push(
      '  echo "trusted-ca-file: $DIR/ca.crt"',
      '  echo "cert-file: $DIR/tls.crt"',
      '  echo "key-file: $DIR/tls.key"',
    );
  }
  lines.push(
    '} > "$DIR/config.yaml"',
    'exec clustermesh agent --join-cluster --cluster-name "$CLUSTER_NAME" --cluster-id "$CLUSTER_ID" \\',
    '  --node-name "$VM_NAME" --ipv4-node "$VM_IP" --api-addr "$VM_IP:9876" \\',
    '  --kvstore etcd --kvstore-opt "etcd.config=$DIR/config.yaml"',
    '',
  );
  return lines.join('\n');
}

/** The inputs of a script `installScript` wrote; one line naming what is missing otherwise. */
export function parseInstallScript(text: string, path: string): JoinInputs {
  const variable = (name: string): string => {
    const m = new RegExp(`^${name}='((?:[^']|'\\\\'')*)'$`, 'm').exec(text);
    if (m === null) {
      throw new ClusterMeshError(
        ErrorCode.InvalidConfig,
        `${path}: not an install script of clustermesh vm install (no ${name})`,
      );
    }
    return (m[1] ?? '').replace(/'\\''/g, "'");
  };
  const heredoc = (mark: string): string | undefined => {
    const m = new RegExp(`<<'${mark}'\\n([\\s\\S]*?)\\n${mark}$`, 'm').exec(text);
    return m === null ? undefined : `${m[1] ?? ''}\n`;
  };
  const clusterId = Number(variable('CLUSTER_ID'));
  const ca = heredoc(MARK.ca);
  const cert = heredoc(MARK.cert);
  const key = heredoc(MARK.key);
  const etcdIP = variable('CLUSTER_ETCD_IP');
  return {
    cluster: variable('CLUSTER_NAME'),
    clusterId,
    endpoint: variable('CLUSTER_ADDR'),
    ...(etcdIP === '' ? {} : { etcdIP }),
    ...(ca === undefined || cert === undefined || key === undefined
      ? {}
      : { tls: { ca, cert, key } }),
  };
}

/** Writes what the script writes into `dir`; returns the etcd client config's path. */
export async function writeJoinFiles(dir: string, i: JoinInputs): Promise<string> {
  await mkdir(dir, { recursive: true });
  const config = join(dir, 'config.yaml');
  if (i.etcdIP !== undefined) {
    await writeFile(
      join(dir, HOST_ALIASES_FILE),
      formatHostAliases([{ ip: i.etcdIP, hostnames: [new URL(i.endpoint).hostname] }]),
    );
  }
  if (i.tls === undefined) {
    await writeFile(config, formatEtcdConfig({ endpoints: [i.endpoint] }));
    return config;
  }
  await writeFile(join(dir, 'ca.crt'), i.tls.ca);
  await writeFile(join(dir, 'tls.crt'), i.tls.cert);
  await writeFile(join(dir, 'tls.key'), i.tls.key, { mode: 0o600 });
  await chmod(join(dir, 'tls.key'), 0o600);
  await writeFile(
    config,
    formatEtcdConfig({
      endpoints: [i.endpoint],
      trustedCaFile: join(dir, 'ca.crt'),
      certFile: join(dir, 'tls.crt'),
      keyFile: join(dir, 'tls.key'),
    }),
  );
  return config;
}
