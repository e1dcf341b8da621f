import { Range, type Etcd3 } from 'etcd3';

/**
 * etcd users and roles of a cluster's kvstore, as Cilium's etcdinit creates them before
 * the clustermesh-apiserver starts, then auth enabled. Users have no password: etcd maps
 * the common name of a verified client certificate to the user.
 *
 * | user               | role             | may                                              |
 * |--------------------|------------------|--------------------------------------------------|
 * | root               | root             | everything                                       |
 * | admin-<cluster>    | root             | everything (apiserver, KVStoreMesh)              |
 * | externalworkload   | externalworkload | read all; write noderegister and the init lock   |
 * | local-<cluster>    | local            | read heartbeat, cache/, cluster-config/, synced/ |
 *
 * The heartbeat is granted as a prefix: readers list-and-watch it as one (a range starting
 * at the key), and nothing else lives under that name.
 * | remote             | remote           | read heartbeat, state/, its cluster-config key,  |
 * |                    |                  | synced/<cluster>/                                |
 */

export interface RolePermission {
  readonly perm: 'Read' | 'Write' | 'Readwrite';
  /** A single key, or every key under `prefix`. */
  readonly key?: string;
  readonly prefix?: string;
  /** Every key. */
  readonly all?: true;
}

export interface EtcdRole {
  readonly name: string;
  readonly permissions: readonly RolePermission[];
}

export interface EtcdUser {
  readonly name: string;
  readonly role: string;
}

export interface EtcdAuthPlan {
  readonly roles: readonly EtcdRole[];
  readonly users: readonly EtcdUser[];
}

/**
 * What a cluster's own control plane needs before anything else connects: `root` and
 * `admin-<cluster>` (both root), so auth can be enabled right away.
 */
export function etcdAdminPlan(cluster: string): EtcdAuthPlan {
  return {
    roles: [],
    users: [
      { name: 'root', role: 'root' },
      { name: `admin-${cluster}`, role: 'root' },
    ],
  };
}

/**
 * What other parties need (`clustermesh mesh enable`): the `remote`, `local` and
 * `externalworkload` roles and users, the `remote` ranges narrowed to what remotes read.
 */
export function etcdMeshPlan(cluster: string): EtcdAuthPlan {
  return {
    roles: [
      {
        name: 'externalworkload',
        permissions: [
          { perm: 'Read', all: true },
          { perm: 'Readwrite', prefix: 'cilium/state/noderegister/v1/' },
          { perm: 'Readwrite', prefix: 'cilium/.initlock/' },
        ],
      },
      {
        name: 'local',
        permissions: [
          { perm: 'Read', prefix: 'cilium/.heartbeat' },
          { perm: 'Read', prefix: 'cilium/cache/' },
          { perm: 'Read', prefix: 'cilium/cluster-config/' },
          { perm: 'Read', prefix: 'cilium/synced/' },
        ],
      },
      {
        name: 'remote',
        permissions: [
          { perm: 'Read', prefix: 'cilium/.heartbeat' },
          { perm: 'Read', prefix: 'cilium/state/' },
          { perm: 'Read', key: `cilium/cluster-config/${cluster}` },
          { perm: 'Read', prefix: `cilium/synced/${cluster}/` },
        ],
      },
    ],
    users: [
      { name: 'externalworkload', role: 'externalworkload' },
      { name: `local-${cluster}`, role: 'local' },
      { name: 'remote', role: 'remote' },
    ],
  };
}

/** Every role and user of `cluster`'s etcd, as etcdinit leaves it. */
export function etcdAuthPlan(cluster: string): EtcdAuthPlan {
  const admin = etcdAdminPlan(cluster);
  const mesh = etcdMeshPlan(cluster);
  return { roles: mesh.roles, users: [...admin.users, ...mesh.users] };
}

function permRange(p: RolePermission): { key: Buffer; range_end: Buffer } {
  if (p.all === true) return { key: Buffer.from([0]), range_end: Buffer.from([0]) };
  if (p.prefix !== undefined) {
    const r = Range.prefix(p.prefix);
    return { key: r.start, range_end: r.end };
  }
  return { key: Buffer.from(p.key ?? ''), range_end: Buffer.alloc(0) };
}

/** `fn`, where an "already exists" answer counts as done: applying a plan twice is a no-op. */
async function idempotent(fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (!/already exists|already granted/i.test(err instanceof Error ? err.message : String(err))) {
      throw err;
    }
  }
}

/**
 * Creates the plan's roles and users (those present are left as they are). On a fresh etcd
 * the client may still do anything; once auth is on it must be a root user's certificate.
 */
export async function applyEtcdAuthPlan(client: Etcd3, plan: EtcdAuthPlan): Promise<void> {
  const auth = client.auth;
  await Promise.all(
    plan.roles.map(async (role) => {
      await idempotent(() => auth.roleAdd({ name: role.name }));
      for (const p of role.permissions) {
        await auth.roleGrantPermission({
          name: role.name,
          perm: { permType: p.perm, ...permRange(p) },
        });
      }
    }),
  );
  // etcd knows the root role without it being added.
  await Promise.all(
    plan.users.map(async (u) => {
      await idempotent(() =>
        auth.userAdd({ name: u.name, password: '', options: { no_password: true } }),
      );
      await auth.userGrantRole({ user: u.name, role: u.role });
    }),
  );
}

/**
 * Applies the plan on a fresh etcd and enables auth: afterwards only certificates whose CN
 * names a user get in.
 */
export async function initEtcdAuth(client: Etcd3, plan: EtcdAuthPlan): Promise<void> {
  await applyEtcdAuthPlan(client, plan);
  await client.auth.authEnable();
}
