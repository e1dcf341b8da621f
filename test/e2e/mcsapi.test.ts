/**
 * The MCS-API conformance suite (test/support/mcsapi-conformance.ts) on 2 clusters, IDs
 * 1–2, whose operators read the remote exports through KVStoreMesh, with every daemon in
 * Kubernetes mode (`up --k8s-mode`): the operators read and write the cluster's objects
 * through its Kubernetes API. The 3-cluster file runs the same suite in registry mode.
 */
import { after, before } from 'node:test';
import { scenario } from '../support/mcsapi-conformance.js';
import { acquireUpLock, releaseUpLock } from '../support/up-lock.js';

before(() => acquireUpLock());
after(() => releaseUpLock());

scenario(2, true, 1, true);
