import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino, type Logger } from 'pino';
import { aborted, sleep } from '../../src/lib/abort.js';
import { ClusterMeshError, ErrorCode } from '../../src/lib/errors.js';
import { Lifecycle, type Hook } from '../../src/lib/lifecycle.js';

interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly hook?: string;
  readonly task?: string;
  readonly err?: string;
}

function capturingLogger(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log = pino(
    { level: 'info' },
    {
      write: (msg: string) => {
        lines.push(JSON.parse(msg) as LogLine);
      },
    },
  );
  return { log, lines };
}

/** A hook that records its start and stop in `events`. */
function recorded(name: string, events: string[], extra: Partial<Hook> = {}): Hook {
  return {
    name,
    start: async (ctx) => {
      events.push(`start:${name}`);
      await extra.start?.(ctx);
    },
    stop: async () => {
      events.push(`stop:${name}`);
      await extra.stop?.();
    },
  };
}

/** A task that runs until aborted, then takes a moment to wind down before it records its end. */
function untilAborted(name: string, events: string[]) {
  return async (signal: AbortSignal): Promise<void> => {
    await aborted(signal);
    await sleep(20);
    events.push(`end:${name}`);
  };
}

describe('Lifecycle', () => {
  it('starts hooks in order and stops them in reverse', async () => {
    const events: string[] = [];
    const lc = new Lifecycle(capturingLogger().log);
    for (const name of ['a', 'b', 'c']) lc.append(recorded(name, events));
    await lc.start();
    assert.deepEqual(events, ['start:a', 'start:b', 'start:c']);
    await lc.stop();
    assert.deepEqual(events.slice(3), ['stop:c', 'stop:b', 'stop:a']);
  });

  it("stopping a hook aborts its signal and waits for its own tasks, not the others'", async () => {
    const events: string[] = [];
    const signals = new Map<string, AbortSignal>();
    let aAbortedWhenBEnded: boolean | undefined;
    const lc = new Lifecycle(capturingLogger().log);
    for (const name of ['a', 'b']) {
      lc.append(
        recorded(name, events, {
          start: (ctx) => {
            signals.set(name, ctx.signal);
            ctx.spawn(name, async (signal) => {
              await untilAborted(name, events)(signal);
              if (name === 'b') aAbortedWhenBEnded = signals.get('a')?.aborted;
            });
          },
        }),
      );
    }
    await lc.start();
    await sleep(30);
    assert.deepEqual(events, ['start:a', 'start:b'], 'tasks run until their hook stops');
    await lc.stop();
    assert.deepEqual(events.slice(2), ['stop:b', 'end:b', 'stop:a', 'end:a']);
    assert.equal(aAbortedWhenBEnded, false, "a's signal aborts only once b's tasks are done");
    assert.equal(signals.get('a')?.aborted, true);
  });

  it('a task spawned while its hook stops is waited for too', async () => {
    const events: string[] = [];
    let spawnLater: ((name: string) => void) | undefined;
    const lc = new Lifecycle(capturingLogger().log);
    lc.append({
      name: 'h',
      start: (ctx) => {
        spawnLater = (name) => {
          ctx.spawn(name, untilAborted(name, events));
        };
      },
      stop: () => {
        spawnLater?.('during-stop');
      },
    });
    await lc.start();
    await lc.stop();
    assert.deepEqual(events, ['end:during-stop']);
  });

  it('a failed start stops what started, without the hooks that follow', async () => {
    const events: string[] = [];
    const { log, lines } = capturingLogger();
    const lc = new Lifecycle(log);
    lc.append(
      recorded('a', events, {
        start: (ctx) => {
          ctx.spawn('a', untilAborted('a', events));
        },
      }),
    );
    lc.append(
      recorded('b', events, {
        start: (ctx) => {
          ctx.spawn('b', untilAborted('b', events));
          throw new ClusterMeshError(ErrorCode.InvalidArgument, 'b cannot start');
        },
      }),
    );
    lc.append(recorded('c', events));
    await assert.rejects(lc.start(), /b cannot start/);
    // b's start did not complete: its task ends, its stop is not called.
    assert.deepEqual(events, ['start:a', 'start:b', 'end:b', 'stop:a', 'end:a']);
    assert.ok(
      lines.some((l) => l.msg === 'start failed' && l.hook === 'b'),
      "lines.some((l) => l.msg === 'start failed' && l.hook === 'b')",
    );
    await lc.stop(); // nothing left to stop
    assert.equal(events.length, 5);
  });

  it('a failing task is logged and neither crashes nor stops the rest', async () => {
    const events: string[] = [];
    const { log, lines } = capturingLogger();
    const lc = new Lifecycle(log);
    lc.append({
      name: 'h',
      start: (ctx) => {
        ctx.spawn('rejects', () =>
          Promise.reject(new ClusterMeshError(ErrorCode.InvalidEntry, 'bad entry')),
        );
        ctx.spawn('throws', () => {
          throw new Error('thrown at once');
        });
        ctx.spawn('healthy', untilAborted('healthy', events));
        // Ending through its own abort is the normal way out, not a failure.
        ctx.spawn('sleeper', (signal) => sleep(60_000, signal));
      },
    });
    await lc.start();
    await sleep(10);
    const failures = lines.filter((l) => l.msg === 'task failed');
    assert.deepEqual(failures.map((l) => [l.level, l.hook, l.task, l.err]).sort(), [
      [50, 'h', 'rejects', 'bad entry'],
      [50, 'h', 'throws', 'thrown at once'],
    ]);
    assert.deepEqual(events, [], 'the other tasks keep running');
    await lc.stop();
    assert.deepEqual(events, ['end:healthy']);
    assert.equal(lines.filter((l) => l.msg === 'task failed').length, 2);
  });
});
