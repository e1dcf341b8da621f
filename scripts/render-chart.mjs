#!/usr/bin/env node
// Renders a Helm chart to plain manifests, as `helm template` does, for machines without
// Helm (no Helm binary in Debian, no maintained pure-JavaScript Helm on npm). It supports
// exactly the subset of Go templates that deploy/helm/clustermesh uses, and refuses anything
// else with the file and the action, so that a template outside the subset fails loudly
// rather than rendering wrong:
//   {{ .Values.a.b }} {{ .Release.Name }} {{ .Release.Namespace }} {{ .Chart.Version }}
//   {{ $ }} {{ $var }} {{ $var.field }} {{ $x := pipeline }}   {{- trims -}}   {{/* comments */}}
//   {{ if P }} {{ else if P }} {{ else }} {{ end }}   {{ range [$i, $v :=] P }} {{ end }}
//   {{ define "n" }} {{ include "n" CTX }}   pipelines with | and (sub expressions)
//   functions: include toYaml nindent indent quote default b64enc eq ne and or not printf
//              required empty trim lower upper toString int add dict list
// Values: the chart's values.yaml, then each --values FILE, then each --set a.b=c, merged
// deep; then checked against values.schema.json, as Helm does.
//
// Usage: node scripts/render-chart.mjs [CHART_DIR] [--values FILE]... [--set K=V]...
//          [--name RELEASE] [--namespace NS] [--out FILE]
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { z } from 'zod';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const DEFAULT_CHART = join(ROOT, 'deploy', 'helm', 'clustermesh');

class TemplateError extends Error {}

// ---- lexing and parsing ----

/** Splits a template into text and actions, applying `{{-` and `-}}` trimming. */
function lex(src, file) {
  const out = [];
  let i = 0;
  while (i < src.length) {
    const open = src.indexOf('{{', i);
    if (open === -1) {
      out.push({ t: 'text', v: src.slice(i) });
      break;
    }
    let text = src.slice(i, open);
    let start = open + 2;
    if (src[start] === '-' && /\s/.test(src[start + 1] ?? '')) {
      text = text.replace(/\s+$/, '');
      start += 1;
    }
    out.push({ t: 'text', v: text });
    const close = findClose(src, start, file);
    let end = close;
    let trimAfter = false;
    if (src[close - 1] === '-' && /\s/.test(src[close - 2] ?? '')) {
      end = close - 1;
      trimAfter = true;
    }
    const body = src.slice(start, end).trim();
    const line = src.slice(0, open).split('\n').length;
    if (!body.startsWith('/*')) out.push({ t: 'action', v: body, line });
    i = close + 2;
    if (trimAfter) {
      while (i < src.length && /\s/.test(src[i])) i++;
    }
  }
  return out;
}

function findClose(src, from, file) {
  let q = null;
  for (let i = from; i < src.length; i++) {
    const c = src[i];
    if (q !== null) {
      if (c === '\\' && q === '"') i++;
      else if (c === q) q = null;
    } else if (c === '"' || c === '`') q = c;
    else if (c === '}' && src[i + 1] === '}') return i;
  }
  throw new TemplateError(`${file}: unclosed action`);
}

/** Tree: {type:'text'|'out'|'assign'|'if'|'range'|'define', …}. */
function parse(tokens, file) {
  let pos = 0;
  const defines = new Map();
  function block(stopAt) {
    const nodes = [];
    while (pos < tokens.length) {
      const tok = tokens[pos++];
      if (tok.t === 'text') {
        if (tok.v !== '') nodes.push({ type: 'text', v: tok.v });
        continue;
      }
      const a = tok.v;
      const where = `${file}:${tok.line}`;
      const kw = /^(\w+)\b\s*(.*)$/s.exec(a);
      const word = kw?.[1];
      if (word === 'end' || word === 'else') {
        if (!stopAt) throw new TemplateError(`${where}: unexpected {{ ${a} }}`);
        return { nodes, stop: a, where };
      }
      if (word === 'if') {
        nodes.push(parseIf(kw[2], where));
      } else if (word === 'range') {
        const m = /^(?:(\$\w+)\s*(?:,\s*(\$\w+))?\s*:=\s*)?(.+)$/s.exec(kw[2]);
        const body = block(true);
        let elseNodes = [];
        if (body.stop === 'else') {
          const e = block(true);
          if (e.stop !== 'end') throw new TemplateError(`${e.where}: expected {{ end }}`);
          elseNodes = e.nodes;
        } else if (body.stop !== 'end') {
          throw new TemplateError(`${body.where}: expected {{ end }} of range`);
        }
        const [k, v] = m[2] !== undefined ? [m[1], m[2]] : [undefined, m[1]];
        nodes.push({
          type: 'range',
          key: k,
          val: v,
          expr: parsePipeline(m[3], where),
          body: body.nodes,
          else: elseNodes,
          where,
        });
      } else if (word === 'define') {
        const name = JSON.parse(kw[2].trim());
        const body = block(true);
        if (body.stop !== 'end') throw new TemplateError(`${body.where}: expected {{ end }}`);
        defines.set(name, body.nodes);
      } else if (['with', 'template', 'block', 'break', 'continue'].includes(word)) {
        throw new TemplateError(`${where}: {{ ${word} }} is outside the supported subset`);
      } else {
        const assign = /^(\$\w+)\s*:?=\s*(.+)$/s.exec(a);
        if (assign !== null) {
          nodes.push({ type: 'assign', name: assign[1], expr: parsePipeline(assign[2], where) });
        } else nodes.push({ type: 'out', expr: parsePipeline(a, where), where });
      }
    }
    if (stopAt) throw new TemplateError(`${file}: missing {{ end }}`);
    return { nodes, stop: undefined };
  }
  function parseIf(cond, where) {
    const body = block(true);
    const node = { type: 'if', cond: parsePipeline(cond, where), then: body.nodes, else: [] };
    if (body.stop === 'end') return node;
    if (body.stop === 'else') {
      const e = block(true);
      if (e.stop !== 'end') throw new TemplateError(`${e.where}: expected {{ end }}`);
      node.else = e.nodes;
      return node;
    }
    const elif = /^else\s+if\s+(.+)$/s.exec(body.stop ?? '');
    if (elif === null) throw new TemplateError(`${body.where}: unexpected {{ ${body.stop} }}`);
    node.else = [parseIf(elif[1], body.where)];
    return node;
  }
  const root = block(false);
  return { nodes: root.nodes, defines };
}

/** Tokens of an action: strings, numbers, words, variables, fields, `(`, `)`, `|`. */
function tokenize(s, where) {
  const toks = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (/\s/.test(c)) {
      i++;
    } else if (c === '"') {
      let j = i + 1;
      while (j < s.length && s[j] !== '"') j += s[j] === '\\' ? 2 : 1;
      toks.push({ k: 'lit', v: JSON.parse(s.slice(i, j + 1)) });
      i = j + 1;
    } else if (c === '(' || c === ')' || c === '|') {
      toks.push({ k: c });
      i++;
    } else {
      let j = i;
      while (j < s.length && !/[\s()|]/.test(s[j])) j++;
      const w = s.slice(i, j);
      i = j;
      if (/^-?\d+(\.\d+)?$/.test(w)) toks.push({ k: 'lit', v: Number(w) });
      else if (w === 'true' || w === 'false') toks.push({ k: 'lit', v: w === 'true' });
      else if (w === 'nil') toks.push({ k: 'lit', v: undefined });
      else if (w.startsWith('.') || w.startsWith('$')) toks.push({ k: 'ref', v: w });
      else if (/^[A-Za-z]\w*$/.test(w)) toks.push({ k: 'fn', v: w });
      else throw new TemplateError(`${where}: cannot read ${JSON.stringify(w)}`);
    }
  }
  return toks;
}

function parsePipeline(src, where) {
  const toks = tokenize(src, where);
  let pos = 0;
  function pipeline() {
    const cmds = [command()];
    while (toks[pos]?.k === '|') {
      pos++;
      cmds.push(command());
    }
    return { cmds, where };
  }
  function command() {
    const args = [];
    while (pos < toks.length && toks[pos].k !== '|' && toks[pos].k !== ')') {
      const t = toks[pos++];
      if (t.k === '(') {
        args.push({ k: 'sub', v: pipeline() });
        if (toks[pos++]?.k !== ')') throw new TemplateError(`${where}: missing )`);
      } else args.push(t);
    }
    if (args.length === 0) throw new TemplateError(`${where}: empty command`);
    return args;
  }
  const p = pipeline();
  if (pos !== toks.length) throw new TemplateError(`${where}: unexpected ${toks[pos].k}`);
  return p;
}

// ---- evaluation ----

function truthy(v) {
  if (v === undefined || v === null || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v).length > 0;
  return true;
}

function field(base, path) {
  let v = base;
  for (const p of path) {
    if (p === '') continue;
    if (v === undefined || v === null || typeof v !== 'object') return undefined;
    v = Object.hasOwn(v, p) ? v[p] : undefined;
  }
  return v;
}

function toYaml(v) {
  if (v === undefined || v === null) return 'null';
  return stringifyYaml(v, { sortMapEntries: true, lineWidth: 0 }).replace(/\n$/, '');
}

function indent(n, s) {
  const pad = ' '.repeat(n);
  return String(s)
    .split('\n')
    .map((l) => pad + l)
    .join('\n');
}

function str(v) {
  if (v === undefined || v === null) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function printf(fmt, ...args) {
  let i = 0;
  return fmt.replace(/%([sdvq%])/g, (_m, c) => {
    if (c === '%') return '%';
    const a = args[i++];
    if (c === 'q') return JSON.stringify(str(a));
    return str(a);
  });
}

class Renderer {
  constructor(defines, root) {
    this.defines = defines;
    this.root = root;
    this.depth = 0;
  }

  funcs(name, args, scope, where) {
    const need = (n) => {
      if (args.length !== n) {
        throw new TemplateError(`${where}: ${name} takes ${n} arguments, got ${args.length}`);
      }
    };
    switch (name) {
      case 'include': {
        need(2);
        const body = this.defines.get(args[0]);
        if (body === undefined) throw new TemplateError(`${where}: no template ${args[0]}`);
        if (++this.depth > 50) throw new TemplateError(`${where}: include nested too deep`);
        const out = this.nodes(body, { dot: args[1], vars: new Map([['$', this.root]]) });
        this.depth--;
        return out;
      }
      case 'toYaml':
        need(1);
        return toYaml(args[0]);
      case 'nindent':
        need(2);
        return `\n${indent(args[0], args[1])}`;
      case 'indent':
        need(2);
        return indent(args[0], args[1]);
      case 'quote':
        return args.map((a) => JSON.stringify(str(a))).join(' ');
      case 'default':
        need(2);
        return truthy(args[1]) ? args[1] : args[0];
      case 'b64enc':
        need(1);
        return Buffer.from(str(args[0])).toString('base64');
      case 'eq':
        need(2);
        return args[0] === args[1];
      case 'ne':
        need(2);
        return args[0] !== args[1];
      case 'and':
        return args.reduce((acc, a) => (truthy(acc) ? a : acc));
      case 'or':
        return args.reduce((acc, a) => (truthy(acc) ? acc : a));
      case 'not':
        need(1);
        return !truthy(args[0]);
      case 'empty':
        need(1);
        return !truthy(args[0]);
      case 'printf':
        return printf(str(args[0]), ...args.slice(1));
      case 'required':
        need(2);
        if (!truthy(args[1])) throw new TemplateError(str(args[0]));
        return args[1];
      case 'trim':
        need(1);
        return str(args[0]).trim();
      case 'lower':
        need(1);
        return str(args[0]).toLowerCase();
      case 'upper':
        need(1);
        return str(args[0]).toUpperCase();
      case 'toString':
        need(1);
        return str(args[0]);
      case 'int':
        need(1);
        return Math.trunc(Number(args[0]));
      case 'add':
        return args.reduce((a, b) => Number(a) + Number(b), 0);
      case 'dict': {
        const o = {};
        for (let i = 0; i + 1 < args.length; i += 2) o[str(args[i])] = args[i + 1];
        return o;
      }
      case 'list':
        return [...args];
      default:
        throw new TemplateError(`${where}: function ${name} is outside the supported subset`);
    }
  }

  arg(t, scope, where) {
    if (t.k === 'lit') return t.v;
    if (t.k === 'sub') return this.pipeline(t.v, scope);
    if (t.k === 'ref') {
      const v = t.v;
      if (v === '.') return scope.dot;
      if (v.startsWith('.')) return field(scope.dot, v.slice(1).split('.'));
      const [name, ...path] = v.split('.');
      if (!scope.vars.has(name)) throw new TemplateError(`${where}: undefined variable ${name}`);
      return field(scope.vars.get(name), path);
    }
    throw new TemplateError(`${where}: ${t.v} is a function, not a value`);
  }

  pipeline(p, scope) {
    let piped;
    let first = true;
    for (const cmd of p.cmds) {
      const head = cmd[0];
      if (head.k === 'fn') {
        const args = cmd.slice(1).map((t) => this.arg(t, scope, p.where));
        if (!first) args.push(piped);
        piped = this.funcs(head.v, args, scope, p.where);
      } else {
        if (cmd.length !== 1 || !first) {
          throw new TemplateError(`${p.where}: a value cannot take arguments`);
        }
        piped = this.arg(head, scope, p.where);
      }
      first = false;
    }
    return piped;
  }

  nodes(nodes, scope) {
    let out = '';
    for (const n of nodes) {
      switch (n.type) {
        case 'text':
          out += n.v;
          break;
        case 'out': {
          const v = this.pipeline(n.expr, scope);
          if (v !== null && typeof v === 'object') {
            throw new TemplateError(`${n.where}: prints a map or list; pipe it to toYaml`);
          }
          out += str(v);
          break;
        }
        case 'assign':
          scope.vars.set(n.name, this.pipeline(n.expr, scope));
          break;
        case 'if':
          out += this.nodes(truthy(this.pipeline(n.cond, scope)) ? n.then : n.else, scope);
          break;
        case 'range': {
          const v = this.pipeline(n.expr, scope);
          let entries = [];
          if (Array.isArray(v)) entries = v.map((x, i) => [i, x]);
          else if (v !== null && typeof v === 'object') {
            entries = Object.keys(v)
              .sort()
              .map((k) => [k, v[k]]);
          } else if (v !== undefined && v !== null) {
            throw new TemplateError(`${n.where}: range over ${typeof v}`);
          }
          if (entries.length === 0) out += this.nodes(n.else, scope);
          for (const [k, x] of entries) {
            const vars = new Map(scope.vars);
            if (n.key !== undefined) vars.set(n.key, k);
            if (n.val !== undefined) vars.set(n.val, x);
            out += this.nodes(n.body, { dot: x, vars });
          }
          break;
        }
        default:
          throw new TemplateError(`unknown node ${n.type}`);
      }
    }
    return out;
  }
}

// ---- values ----

function isMap(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function merge(base, over) {
  if (!isMap(base) || !isMap(over)) return structuredClone(over);
  const out = structuredClone(base);
  for (const [k, v] of Object.entries(over)) {
    // As Helm: null deletes a default.
    if (v === null) delete out[k];
    else out[k] = isMap(out[k]) && isMap(v) ? merge(out[k], v) : structuredClone(v);
  }
  return out;
}

function setValue(values, assignment) {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new TemplateError(`--set ${assignment.slice(0, 80)}: expected KEY=VALUE`);
  const path = assignment.slice(0, eq).split('.');
  const raw = assignment.slice(eq + 1);
  let v = raw;
  if (raw === 'true' || raw === 'false') v = raw === 'true';
  else if (raw === 'null') v = null;
  else if (/^-?\d+$/.test(raw)) v = Number(raw);
  let o = values;
  for (const p of path.slice(0, -1)) {
    if (!isMap(o[p])) o[p] = {};
    o = o[p];
  }
  o[path.at(-1)] = v;
}

/** Helm's check of the merged values against the chart's values.schema.json. */
function checkSchema(chartDir, values) {
  const file = join(chartDir, 'values.schema.json');
  if (!existsSync(file)) return;
  const schema = z.fromJSONSchema(JSON.parse(readFileSync(file, 'utf8')));
  const r = schema.safeParse(values);
  if (!r.success) {
    const lines = r.error.issues.map(
      (i) => `- ${i.path.length === 0 ? '(root)' : i.path.join('.')}: ${i.message}`,
    );
    throw new TemplateError(
      `values don't meet the specifications of the schema:\n${lines.join('\n')}`,
    );
  }
}

// ---- the chart ----

/**
 * The manifests of `chartDir` as `helm template` prints them: one document per non-empty
 * template, each preceded by `# Source: <chart>/templates/<file>`, templates in name order.
 */
export function renderChart(chartDir, opts = {}) {
  const chart = parseYaml(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8'));
  let values = parseYaml(readFileSync(join(chartDir, 'values.yaml'), 'utf8')) ?? {};
  for (const f of opts.valueFiles ?? [])
    values = merge(values, parseYaml(readFileSync(f, 'utf8')) ?? {});
  for (const s of opts.set ?? []) setValue(values, s);
  checkSchema(chartDir, values);
  const root = {
    Values: values,
    Release: {
      Name: opts.name ?? 'clustermesh',
      Namespace: opts.namespace ?? 'kube-system',
      Service: 'Helm',
    },
    Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion },
  };
  const dir = join(chartDir, 'templates');
  const files = readdirSync(dir)
    .filter((f) => /\.(ya?ml|tpl)$/.test(f))
    .sort();
  const defines = new Map();
  const parsed = [];
  for (const f of files) {
    const t = parse(lex(readFileSync(join(dir, f), 'utf8'), f), f);
    for (const [k, v] of t.defines) defines.set(k, v);
    if (!f.startsWith('_')) parsed.push({ f, nodes: t.nodes });
  }
  const r = new Renderer(defines, root);
  const docs = [];
  for (const { f, nodes } of parsed) {
    const text = r.nodes(nodes, { dot: root, vars: new Map([['$', root]]) });
    for (const doc of text.split(/^---\s*$/m)) {
      if (doc.replace(/#.*$/gm, '').trim() === '') continue;
      docs.push(
        `---\n# Source: ${chart.name}/templates/${f}\n${doc.replace(/^\n+/, '').replace(/\s+$/, '')}\n`,
      );
    }
  }
  return docs.join('');
}

function main(argv) {
  let chartDir = DEFAULT_CHART;
  const opts = { valueFiles: [], set: [] };
  let outFile;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new TemplateError(`${a} needs a value`);
      return v;
    };
    if (a === '--values' || a === '-f') opts.valueFiles.push(next());
    else if (a === '--set') opts.set.push(next());
    else if (a === '--name') opts.name = next();
    else if (a === '--namespace' || a === '-n') opts.namespace = next();
    else if (a === '--out') outFile = next();
    else if (a === '--help' || a === '-h') {
      process.stdout.write(
        'Usage: node scripts/render-chart.mjs [CHART_DIR] [--values FILE]... [--set K=V]... [--name RELEASE] [--namespace NS] [--out FILE]\n',
      );
      return 0;
    } else if (a.startsWith('-')) throw new TemplateError(`unknown option ${a.slice(0, 80)}`);
    else chartDir = a;
  }
  const out = renderChart(chartDir, opts);
  if (outFile === undefined) process.stdout.write(out);
  else writeFileSync(outFile, out);
  return 0;
}

if (process.argv[1] !== undefined && basename(process.argv[1]) === 'render-chart.mjs') {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof TemplateError) && !(err instanceof Error && 'code' in err)) throw err;
    process.stderr.write(`Error: ${err.message}\n`);
    process.exitCode = 1;
  }
}
