/**
 * VMs of the local mesh (`clustermesh vm run NAME`): each its own process on its own
 * loopback address (cluster c's VMs in 127.c.250.0/24, inside the workload's
 * ipv4-alloc-cidr when that is a loopback range), joining with the inputs of the install
 * script. A record per running VM
 * in `<state-dir>/vms/<name>.json` tells `clustermesh exec vm/NAME` where it is.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { clusterCertFiles } from '../certs/index.js';
import { resolveKvstoreConfig } from '../kvstore/config.js';
import { parseCIDR } from '../keyspace/index.js';
import { ClusterMeshError, ErrorCode } from '../lib/errors.js';
import { writeJoinFiles, type JoinInputs } from '../externalworkload/install.js';
import { VmAgent } from '../externalworkload/vm-agent.js';
import { externalWorkloadObject } from '../externalworkload/workload.js';
import type { RegistryObject } from '../registry/types.js';
import { vmCIDR } from './addressing.js';
import { clusterOf, type MeshState } from './mesh-state.js';
import { readCredentials } from './secure-etcd.js';

export interface VmRecord {
  readonly name: string;
  readonly cluster: string;
  readonly ip: string;
  /** The VM agent's API. */
  readonly api: string;
  /** `ip:port` of the cluster's DNS server. */
  readonly dns: string;
  readonly pid: number;
}

function vmsDir(stateDir: string): string {
  return join(resolve(stateDir), 'vms');
}

/** What `vm install` writes for `cluster` of a running mesh. */
export async function joinInputsOf(state: MeshState, cluster: string): Promise<JoinInputs> {
  const c = clusterOf(state, cluster);
  if (state.kvstore !== 'etcd') {
    throw new ClusterMeshError(
      ErrorCode.InvalidConfig,
      `external workloads need the mesh's clusters on etcd (this mesh runs --kvstore ${state.kvstore})`,
    );
  }
  if (c.etcdDir === undefined) return { cluster: c.name, clusterId: c.id, endpoint: c.kvstore };
  return {
    cluster: c.name,
    clusterId: c.id,
    endpoint: c.kvstore,
    ...(c.etcdIP === undefined ? {} : { etcdIP: c.etcdIP }),
    tls: await readCredentials(clusterCertFiles(c.etcdDir, c.name), 'externalworkload'),
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Records of the VMs running now (records of dead processes are ignored). */
export async function listVmRecords(stateDir: string): Promise<VmRecord[]> {
  let names: string[];
  try {
    names = await readdir(vmsDir(stateDir));
  } catch {
    return [];
  }
  const out: VmRecord[] = [];
  for (const f of names.filter((n) => n.endsWith('.json')).sort()) {
    try {
      const r = JSON.parse(await readFile(join(vmsDir(stateDir), f), 'utf8')) as VmRecord;
      if (alive(r.pid)) out.push(r);
    } catch {
      // A record being written or removed: not a running VM.
    }
  }
  return out;
}

export async function readVmRecord(stateDir: string, name: string): Promise<VmRecord> {
  const r = (await listVmRecords(stateDir)).find((x) => x.name === name);
  if (r === undefined) {
    throw new ClusterMeshError(
      ErrorCode.KeyNotFound,
      `no VM ${JSON.stringify(name.slice(0, 80))} runs in this mesh (start one with: clustermesh vm run ${name.slice(0, 80)})`,
    );
  }
  return r;
}

/**
 * The VM's address: the first one no running VM holds in the cluster's VM range
 * (127.<cluster id>.250.0/24, which no pod CIDR reaches and the ClusterIP allocator
 * skips), inside its workload's ipv4-alloc-cidr when that is a loopback range. A loopback
 * CIDR outside the VM range would hand a VM a node's, pod's or Service's address: refused.
 */
export function pickVmAddress(
  clusterId: number,
  cidr: string | undefined,
  taken: ReadonlySet<string>,
): string {
  const range = vmCIDR(clusterId);
  const c = cidr === undefined ? null : parseCIDR(cidr);
  let candidates = Array.from({ length: 254 }, (_, k) => `127.${clusterId}.250.${k + 1}`);
  if (c !== null && c.bits === 32 && c.ip[0] === 127) {
    const base = c.ip.reduce((acc, b) => acc * 256 + b, 0);
    const size = 2 ** (32 - c.prefixLen);
    // A /31 or /32 has no network and broadcast address to skip.
    const [first, last] = size <= 2 ? [base, base + size - 1] : [base + 1, base + size - 2];
    const inCidr = (ip: string): boolean => {
      const n = ip.split('.').reduce((acc, b) => acc * 256 + Number(b), 0);
      return n >= first && n <= last;
    };
    candidates = candidates.filter(inCidr);
    if (candidates.length === 0) {
      throw new ClusterMeshError(
        ErrorCode.InvalidArgument,
        `ipv4-alloc-cidr ${cidr?.slice(0, 80) ?? ''} has no address in ${range}, where this mesh's VMs live (pods, nodes and ClusterIPs own the rest of 127.${clusterId}.0.0/16)`,
      );
    }
  }
  const free = candidates.find((ip) => !taken.has(ip));
  if (free !== undefined) return free;
  throw new ClusterMeshError(
    ErrorCode.InvalidArgument,
    `no free VM address left in ${cidr !== undefined && c?.ip[0] === 127 ? `${cidr} ∩ ` : ''}${range}`,
  );
}

export interface RunVmOptions {
  readonly stateDir: string;
  readonly name: string;
  readonly inputs: JoinInputs;
  /** The address; default `pickVmAddress`. */
  readonly ip?: string | undefined;
  readonly cidr?: string | undefined;
  readonly dns: string;
  readonly log: Logger;
  readonly answerTimeoutMs?: number | undefined;
  readonly onRefused?: ((message: string) => void) | undefined;
}

export interface RunningVm {
  readonly record: VmRecord;
  readonly identity: number | undefined;
  stop(): Promise<void>;
}

/** Starts the VM in this process; resolves once it is registered and serving. */
export async function runVm(o: RunVmOptions): Promise<RunningVm> {
  const taken = new Set((await listVmRecords(o.stateDir)).map((r) => r.ip));
  const ip = o.ip ?? pickVmAddress(o.inputs.clusterId, o.cidr, taken);
  const dir = join(vmsDir(o.stateDir), o.name);
  const config = await writeJoinFiles(join(dir, 'etcd'), o.inputs);
  const kvstore = await resolveKvstoreConfig('etcd', [`etcd.config=${config}`]);
  const vm = new VmAgent({
    cluster: o.inputs.cluster,
    clusterId: o.inputs.clusterId,
    name: o.name,
    ip,
    kvstore,
    log: o.log,
    answerTimeoutMs: o.answerTimeoutMs,
    onRefused: o.onRefused,
  });
  const recordPath = join(vmsDir(o.stateDir), `${o.name}.json`);
  try {
    await vm.start();
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const record: VmRecord = {
    name: o.name,
    cluster: o.inputs.cluster,
    ip,
    api: vm.apiUrl ?? '',
    dns: o.dns,
    pid: process.pid,
  };
  await mkdir(vmsDir(o.stateDir), { recursive: true });
  await writeFile(recordPath, `${JSON.stringify(record, null, 2)}\n`);
  return {
    record,
    identity: vm.registrar.identity,
    stop: async () => {
      await rm(recordPath, { force: true });
      await vm.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** `up --vms N`: VMs vm1..vmN of cluster1, each its own `clustermesh vm run` process. */
export interface MeshVms {
  stop(): Promise<void>;
}

const BIN = fileURLToPath(new URL('../../bin/clustermesh', import.meta.url));

/**
 * Creates the workloads (labels `app=vm`, `vm=<name>`) in `cluster`'s registry and starts a
 * `vm run` per VM in `stateDir`; resolves once each has joined, throws with its output if
 * one fails to.
 */
export async function startMeshVms(o: {
  readonly stateDir: string;
  readonly cluster: string;
  readonly count: number;
  readonly registry: { apply(objects: readonly RegistryObject[]): Promise<unknown> };
  readonly log: Logger;
  readonly timeoutMs?: number | undefined;
}): Promise<MeshVms> {
  const names = Array.from({ length: o.count }, (_, i) => `vm${i + 1}`);
  await o.registry.apply(
    names.map((name) => externalWorkloadObject(name, { labels: { app: 'vm', vm: name } })),
  );
  const children: { name: string; child: ChildProcess; exited: Promise<void> }[] = [];
  const stop = async (): Promise<void> => {
    for (const c of children) if (c.child.exitCode === null) c.child.kill('SIGINT');
    await Promise.all(children.map((c) => c.exited));
    await rm(vmsDir(o.stateDir), { recursive: true, force: true });
  };
  try {
    // One after another: each picks the next free address.
    for (const name of names) {
      const child = spawn(
        BIN,
        ['vm', 'run', name, '--cluster', o.cluster, '--state-dir', o.stateDir],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
          env: process.env,
        },
      );
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
      children.push({ name, child, exited });
      const deadline = Date.now() + (o.timeoutMs ?? 60_000);
      while (!output.includes('✅')) {
        if (child.exitCode !== null || Date.now() > deadline) {
          throw new ClusterMeshError(
            ErrorCode.InvalidConfig,
            `--vms: ${name} did not join ${o.cluster}: ${output.trim().split('\n').pop() ?? 'no output'}`,
          );
        }
        await sleep(100);
      }
      o.log.info({ vm: name, line: output.trim().split('\n')[0] }, 'VM joined');
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { stop };
}
