/**
 * RBAC of the Kubernetes API (src/kubeapi/rbac.ts) over a registry on the memory backend:
 * rule matching as Kubernetes matches (verbs, groups, resources and subresources, wildcards,
 * resourceNames), the subjects a binding may name, Roles only in their namespace, the 403
 * wording, and tokens: signed, expiring, bound to the ServiceAccount's UID.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryBackend } from '../../src/kvstore/memory.js';
import { MemoryStore } from '../../src/kvstore/memory-store.js';
import { forbidden, Rbac, ruleAllows, type KubeUser } from '../../src/kubeapi/rbac.js';
import { ApiError } from '../../src/kubeapi/status.js';
import { Registry } from '../../src/registry/registry.js';
import type { RegistryObject } from '../../src/registry/types.js';

const RBAC = 'rbac.authorization.k8s.io/v1';

function setup(now: () => Date = () => new Date()): { registry: Registry; rbac: Rbac } {
  const registry = new Registry(new MemoryBackend(new MemoryStore()));
  return { registry, rbac: new Rbac(registry, 'secret-key-material', now) };
}

async function sa(registry: Registry, namespace: string, name: string): Promise<RegistryObject> {
  return registry.create({
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name, namespace },
  });
}

void describe('kubeapi RBAC', () => {
  it('matches rules as Kubernetes does', () => {
    const a = { verb: 'list', apiGroup: 'cilium.io', resource: 'ciliumnodes' };
    const rule = (r: Partial<Parameters<typeof ruleAllows>[0]>) =>
      ruleAllows(
        { verbs: ['list'], apiGroups: ['cilium.io'], resources: ['ciliumnodes'], ...r },
        a,
      );
    assert.equal(rule({}), true);
    assert.equal(rule({ verbs: ['get', 'watch'] }), false);
    assert.equal(rule({ verbs: ['*'] }), true);
    assert.equal(rule({ apiGroups: [''] }), false);
    assert.equal(rule({ apiGroups: ['*'] }), true);
    assert.equal(rule({ resources: ['ciliumendpoints'] }), false);
    assert.equal(rule({ resources: ['*'] }), true);
    // A named rule never allows a list (the request has no name).
    assert.equal(rule({ resourceNames: ['node-1'] }), false);
    const get = { ...a, verb: 'get', name: 'node-1' };
    assert.equal(
      ruleAllows(
        {
          verbs: ['get'],
          apiGroups: ['cilium.io'],
          resources: ['ciliumnodes'],
          resourceNames: ['node-1'],
        },
        get,
      ),
      true,
    );
    assert.equal(
      ruleAllows(
        {
          verbs: ['get'],
          apiGroups: ['cilium.io'],
          resources: ['ciliumnodes'],
          resourceNames: ['node-2'],
        },
        get,
      ),
      false,
    );
    // Subresources are named with their resource; `x/*` and `*/sub` are wildcards.
    const status = {
      verb: 'update',
      apiGroup: 'multicluster.x-k8s.io',
      resource: 'serviceexports',
      subresource: 'status',
    };
    const on = (resources: string[]) =>
      ruleAllows({ verbs: ['update'], apiGroups: ['multicluster.x-k8s.io'], resources }, status);
    assert.equal(on(['serviceexports']), false);
    assert.equal(on(['serviceexports/status']), true);
    assert.equal(on(['serviceexports/*']), true);
    assert.equal(on(['*/status']), true);
    assert.equal(on(['serviceimports/status']), false);
  });

  it('words a denial as the Kubernetes API server does', () => {
    const u: KubeUser = {
      kind: 'serviceaccount',
      namespace: 'kube-system',
      name: 'cilium',
      uid: 'u',
    };
    const cluster = forbidden(u, { verb: 'list', apiGroup: '', resource: 'services' });
    assert.equal(cluster.code, 403);
    assert.equal(cluster.reason, 'Forbidden');
    assert.equal(
      cluster.message,
      'services is forbidden: User "system:serviceaccount:kube-system:cilium" cannot list resource "services" in API group "" at the cluster scope',
    );
    assert.deepEqual(cluster.toStatus().details, { kind: 'services' });
    const named = forbidden(u, {
      verb: 'patch',
      apiGroup: 'multicluster.x-k8s.io',
      resource: 'serviceexports',
      subresource: 'status',
      namespace: 'x',
      name: 'web',
    });
    assert.equal(
      named.message,
      'serviceexports.multicluster.x-k8s.io "web" is forbidden: User "system:serviceaccount:kube-system:cilium" cannot patch resource "serviceexports/status" in API group "multicluster.x-k8s.io" in the namespace "x"',
    );
  });

  it('authorizes by ClusterRoleBindings everywhere and RoleBindings in their namespace only', async () => {
    const { registry, rbac } = setup();
    const acct = await sa(registry, 'kube-system', 'op');
    const u: KubeUser = {
      kind: 'serviceaccount',
      namespace: 'kube-system',
      name: 'op',
      uid: acct.metadata.uid ?? '',
    };
    const svcList = (namespace?: string) => ({
      verb: 'list',
      apiGroup: '',
      resource: 'services',
      namespace,
    });
    assert.equal(await rbac.allowed(u, svcList()), false);
    await registry.create({
      apiVersion: RBAC,
      kind: 'Role',
      metadata: { name: 'svc', namespace: 'team' },
      rules: [{ verbs: ['list'], apiGroups: [''], resources: ['services'] }],
    });
    // Subject namespace defaults to the RoleBinding's: this one names team/op, not kube-system/op.
    await registry.create({
      apiVersion: RBAC,
      kind: 'RoleBinding',
      metadata: { name: 'b1', namespace: 'team' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'svc' },
      subjects: [{ kind: 'ServiceAccount', name: 'op' }],
    });
    assert.equal(await rbac.allowed(u, svcList('team')), false);
    await registry.create({
      apiVersion: RBAC,
      kind: 'RoleBinding',
      metadata: { name: 'b2', namespace: 'team' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'svc' },
      subjects: [{ kind: 'ServiceAccount', name: 'op', namespace: 'kube-system' }],
    });
    assert.equal(await rbac.allowed(u, svcList('team')), true);
    assert.equal(await rbac.allowed(u, svcList('other')), false);
    assert.equal(await rbac.allowed(u, svcList()), false);
    // A ClusterRole bound to the service-account group: everywhere, for every ServiceAccount.
    await registry.create({
      apiVersion: RBAC,
      kind: 'ClusterRole',
      metadata: { name: 'view-cn' },
      rules: [
        { verbs: ['get', 'list', 'watch'], apiGroups: ['cilium.io'], resources: ['ciliumnodes'] },
      ],
    });
    const cn = { verb: 'watch', apiGroup: 'cilium.io', resource: 'ciliumnodes' };
    assert.equal(await rbac.allowed(u, cn), false);
    await registry.create({
      apiVersion: RBAC,
      kind: 'ClusterRoleBinding',
      metadata: { name: 'all-sa' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view-cn' },
      subjects: [{ kind: 'Group', name: 'system:serviceaccounts' }],
    });
    assert.equal(await rbac.allowed(u, cn), true);
    await assert.rejects(
      rbac.authorize(u, { ...cn, verb: 'delete', name: 'n1' }),
      (err: unknown) => err instanceof ApiError && err.code === 403,
    );
    await rbac.authorize({ kind: 'admin' }, { ...cn, verb: 'delete', name: 'n1' });
  });

  it('refuses bindings Kubernetes refuses', async () => {
    const { registry } = setup();
    await assert.rejects(
      registry.create({
        apiVersion: RBAC,
        kind: 'ClusterRoleBinding',
        metadata: { name: 'x' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'r' },
        subjects: [],
      }),
      /may only reference a ClusterRole/,
    );
    await assert.rejects(
      registry.create({
        apiVersion: RBAC,
        kind: 'ClusterRoleBinding',
        metadata: { name: 'x' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'r' },
        subjects: [{ kind: 'ServiceAccount', name: 'a' }],
      }),
      /namespace: Required value/,
    );
    await assert.rejects(
      registry.create({
        apiVersion: RBAC,
        kind: 'ClusterRole',
        metadata: { name: 'x' },
        rules: [{ verbs: [], apiGroups: [''], resources: ['pods'] }],
      }),
      /rules\[0\]\.verbs: must not be empty/,
    );
  });

  it('accepts its own tokens until they expire or the ServiceAccount is replaced', async () => {
    let now = new Date('2026-12-05T12:00:00Z');
    const { registry, rbac } = setup(() => now);
    const acct = (await sa(registry, 'kube-system', 'cilium')) as RegistryObject & {
      kind: 'ServiceAccount';
    };
    const { token, exp } = rbac.issue(acct, ['https://kubernetes.default.svc.cluster.local'], 600);
    assert.equal(exp.toISOString(), '2026-12-05T12:10:00.000Z');
    const u = await rbac.authenticate(token);
    assert.deepEqual(u, {
      kind: 'serviceaccount',
      namespace: 'kube-system',
      name: 'cilium',
      uid: acct.metadata.uid,
    });
    // Not ours: another key, a changed payload, or not a JWT at all.
    const other = new Rbac(registry, 'other-key', () => now);
    assert.equal(await other.authenticate(token), undefined);
    const [h, , s] = token.split('.');
    const forged = Buffer.from(
      JSON.stringify({
        'kubernetes.io': { namespace: 'kube-system', serviceaccount: { name: 'admin', uid: 'x' } },
        exp: 9e9,
      }),
    ).toString('base64url');
    assert.equal(await rbac.authenticate(`${h}.${forged}.${s}`), undefined);
    assert.equal(await rbac.authenticate('plain-token'), undefined);
    // Expired: refused with 401.
    now = new Date('2026-12-05T12:10:00Z');
    await assert.rejects(
      rbac.authenticate(token),
      (err: unknown) => err instanceof ApiError && err.code === 401,
    );
    // A re-created ServiceAccount (new UID) does not inherit the old tokens.
    now = new Date('2026-12-05T12:00:00Z');
    await registry.delete('ServiceAccount', 'kube-system', 'cilium');
    await sa(registry, 'kube-system', 'cilium');
    await assert.rejects(
      rbac.authenticate(token),
      (err: unknown) => err instanceof ApiError && err.code === 401,
    );
  });
});
