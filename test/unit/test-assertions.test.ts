/**
 * A failing `assert.ok(value)` without a message makes Node derive one from the source:
 * it re-reads the file on disk at the call site's line and column. Under tsx those point
 * into the transformed code, so Node 20 parses the wrong text and, when no call
 * expression is found there, keeps re-parsing the file in a recursion that reads no new
 * bytes. The process then sits at full CPU with its event loop blocked, which in the e2e
 * tests also freezes the loopback proxies the daemons dial. Every such call must pass a
 * message; the lint config says so too, this check holds even where lint is not run.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...tsFiles(p));
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** `file:line` of every `assert.ok(x)` and `assert(x)` given fewer than two arguments. */
export function messagelessAsserts(fileName: string, text: string): string[] {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found: string[] = [];
  const visit = (n: ts.Node): void => {
    if (ts.isCallExpression(n) && n.arguments.length < 2) {
      const callee = n.expression;
      const isOk =
        ts.isPropertyAccessExpression(callee) &&
        ts.isIdentifier(callee.expression) &&
        callee.expression.text === 'assert' &&
        callee.name.text === 'ok';
      const isBare = ts.isIdentifier(callee) && callee.text === 'assert';
      if (isOk || isBare) {
        const { line } = sf.getLineAndCharacterOfPosition(n.getStart(sf));
        found.push(`${fileName}:${line + 1}`);
      }
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return found;
}

void describe('test assertions', () => {
  it('the finder flags assert.ok and assert() without a message, nothing else', () => {
    const src = [
      'assert.ok(a === 1);',
      'assert(b);',
      "assert.ok(c, 'c is set');",
      'assert(d, `d: ${String(d)}`);',
      'assert.equal(e, 1);',
      'other.ok(f);',
    ].join('\n');
    assert.deepEqual(messagelessAsserts('x.ts', src), ['x.ts:1', 'x.ts:2']);
  });

  it('every assert.ok and assert() in test/ and bench/ passes a message', () => {
    const offenders = ['test', 'bench']
      .flatMap((d) => tsFiles(join(ROOT, d)))
      .flatMap((f) => messagelessAsserts(relative(ROOT, f), readFileSync(f, 'utf8')));
    assert.deepEqual(offenders, [], `assertions without a message:\n${offenders.join('\n')}`);
  });
});
