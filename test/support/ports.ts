// One allocator for the whole process: etcd fixtures and tests must not be handed the same port.
export { freePort, freePorts } from '../../src/etcd/ports.js';
