/**
 * The MCS-API conformance suite (test/support/mcsapi-conformance.ts) on 3 clusters reading
 * the remote kvstores directly. It runs on IDs 4–6 (cluster4..cluster6, 127.4–6.x.x) under
 * that block's lock, so it runs beside the files on IDs 1–3.
 */
import { after, before } from 'node:test';
import { scenario } from '../support/mcsapi-conformance.js';
import { acquireUpLock, releaseUpLock } from '../support/up-lock.js';

before(() => acquireUpLock(600_000, 4));
after(() => releaseUpLock(4));

scenario(3, false, 4);
