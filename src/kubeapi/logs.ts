import type { Logger } from 'pino';
import type { RequestContext, SubresourceHandler } from './handlers.js';
import { badRequest, methodNotAllowed } from './status.js';

/**
 * `…/pods/P/log`: `text/plain`, the container's lines as written; `follow=true` keeps the
 * response open (chunked) and streams new lines until the client goes away.
 */

export interface LogRequest {
  readonly namespace: string;
  readonly pod: string;
  readonly container?: string | undefined;
  readonly tailLines?: number | undefined;
}

export interface PodLogStream {
  /** What is there now (already cut to `tailLines`). */
  readonly lines: readonly string[];
  /** Lines written from now on, until the returned function is called. */
  follow(onLine: (line: string) => void): () => void;
}

/** Resolves the pod and container (an `ApiError` for a missing one) and opens its log. */
export type PodLogSource = (req: LogRequest) => Promise<PodLogStream>;

export function logSubresource(source: PodLogSource, log: Logger): SubresourceHandler {
  return {
    resource: 'pods',
    name: 'log',
    kind: 'Pod',
    verbs: ['get'],
    handle: async ({ req, res, url, target }: RequestContext) => {
      if (req.method !== 'GET') throw methodNotAllowed();
      const q = url.searchParams;
      const tail = q.get('tailLines');
      let tailLines: number | undefined;
      if (tail !== null) {
        tailLines = Number(tail);
        if (!Number.isInteger(tailLines) || tailLines < 0) {
          throw badRequest(
            `tailLines: Invalid value: ${JSON.stringify(tail.slice(0, 80))}: must be greater than or equal to 0`,
          );
        }
      }
      const stream = await source({
        namespace: target.namespace ?? 'default',
        pod: target.name ?? '',
        container: q.get('container') ?? undefined,
        tailLines,
      });
      const follow = q.get('follow') === 'true' || q.get('follow') === '1';
      res.writeHead(200, {
        'content-type': 'text/plain',
        'cache-control': 'no-cache, private',
        ...(follow ? {} : { 'content-length': Buffer.byteLength(stream.lines.join('')) }),
      });
      if (!follow) {
        res.end(stream.lines.join(''));
        return;
      }
      if (stream.lines.length > 0) res.write(stream.lines.join(''));
      // Flushes the head now, so kubectl starts printing before the first new line.
      else res.flushHeaders();
      const stop = stream.follow((line) => res.write(line));
      await new Promise<void>((resolve) => {
        res.on('close', resolve);
      });
      stop();
      log.debug({ pod: `${target.namespace ?? ''}/${target.name ?? ''}` }, 'log follower left');
    },
  };
}
