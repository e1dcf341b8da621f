import { ClusterMeshError, ErrorCode, errorMessage } from '../lib/errors.js';
import type { ApplyOutcome } from '../registry/registry.js';
import type { RegistryObject } from '../registry/types.js';

/**
 * The CLI's side of a running `clustermesh up`: the control API named in mesh.json.
 * Errors come back as `{"error":{"code","message"}}` and are rethrown with their code,
 * so a bad manifest reads the same as with a kvstore the CLI opens itself.
 */

export interface MeshPod {
  readonly namespace: string;
  readonly name: string;
  readonly node: string;
  readonly ip: string;
  readonly phase: string;
}

export class MeshControlClient {
  constructor(
    private readonly baseUrl: string,
    private readonly cluster: string,
  ) {}

  apply(objects: readonly RegistryObject[]): Promise<ApplyOutcome[]> {
    return this.call<ApplyOutcome[]>('POST', '/v1/apply', {}, { objects });
  }

  objects(kind: string, namespace?: string, name?: string): Promise<RegistryObject[]> {
    return this.call<RegistryObject[]>('GET', '/v1/objects', { kind, namespace, name });
  }

  delete(
    targets: readonly { kind: string; namespace?: string; name: string }[],
  ): Promise<boolean[]> {
    return this.call<boolean[]>('POST', '/v1/delete', {}, { targets });
  }

  pods(): Promise<MeshPod[]> {
    return this.call<MeshPod[]>('GET', '/v1/pods', {});
  }

  private async call<T>(
    method: string,
    path: string,
    query: Record<string, string | undefined>,
    body?: unknown,
  ): Promise<T> {
    const url = new URL(path, this.baseUrl);
    url.searchParams.set('cluster', this.cluster);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, v);
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause;
      throw new ClusterMeshError(
        ErrorCode.KvstoreUnreachable,
        `cannot reach the running mesh at ${this.baseUrl} (is "clustermesh up" still running?): ${errorMessage(cause ?? err)}`,
      );
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new ClusterMeshError(
        ErrorCode.InvalidEntry,
        `mesh control API: invalid reply to ${path}`,
      );
    }
    if (!res.ok) {
      const e = (parsed as { error?: { code?: string; message?: string } }).error;
      throw new ClusterMeshError(
        knownCode(e?.code),
        e?.message ?? `mesh control API answered ${res.status}`,
      );
    }
    return parsed as T;
  }
}

function knownCode(code: string | undefined): ErrorCode {
  const codes = Object.values(ErrorCode) as string[];
  return code !== undefined && codes.includes(code)
    ? (code as ErrorCode)
    : ErrorCode.KvstoreOperation;
}
