/** Free loopback ports for processes this one starts (etcd members bind theirs after we choose). */
import { createServer } from 'node:net';

// The kernel may hand the same ephemeral port out again once it has been closed, and callers
// usually allocate several ports before binding any of them; remembering what was returned keeps
// two fixtures in one process from racing for the same port.
const handedOut = new Set<number>();

const MAX_ATTEMPTS = 50;

function bindEphemeral(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error(`could not determine the port bound on ${host}`));
      });
    });
  });
}

/** Returns a TCP port on `host` that was free a moment ago and not returned before by this process. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const port = await bindEphemeral(host);
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no unused free port found on ${host} after ${MAX_ATTEMPTS} attempts`);
}

/** Returns `n` distinct free ports on `host`. */
export async function freePorts(n: number, host = '127.0.0.1'): Promise<number[]> {
  const ports: number[] = [];
  // Sequential on purpose: concurrent binds could be given the same port by the kernel.
  for (let i = 0; i < n; i++) ports.push(await freePort(host));
  return ports;
}
