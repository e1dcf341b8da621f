import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments, type YAMLError } from 'yaml';
import { ClusterMeshError, ErrorCode, errorMessage } from '../lib/errors.js';
import type { KindInfo } from './kinds.js';
import {
  describeRaw,
  formatProblem,
  isRecord,
  validateObject,
  type ValidateOptions,
} from './validation.js';
import type { RegistryObject } from './types.js';

/**
 * Manifest files as `kubectl apply -f` reads them: one file, a directory of *.yaml, *.yml
 * and *.json files (not recursive, in name order) or `-` for stdin; multi-document YAML;
 * `kind: List` flattened. Everything is validated before anything is returned, so a caller
 * that writes only after loading never half-applies a bad set of files.
 */

export const STDIN_SOURCE = '<stdin>';
const MANIFEST_EXTENSIONS = ['.yaml', '.yml', '.json'];

export interface ManifestObject {
  readonly info: KindInfo;
  /** Validated, defaults applied. */
  readonly object: RegistryObject;
  /** The file as the user named it (`<stdin>` for `-`). */
  readonly source: string;
  /** 1-based index of the YAML document in its file. */
  readonly document: number;
  /** 1-based index inside a `kind: List` document. */
  readonly item?: number | undefined;
}

export interface LoadManifestOptions extends ValidateOptions {
  /** Reads all of stdin for `-` (default: process.stdin). */
  readonly readStdin?: (() => Promise<string>) | undefined;
}

/**
 * Parses and validates the documents of one manifest text. Throws ClusterMeshError
 * (InvalidArgument) on the first problem, in one line: `rebel.yaml: document 2 (Service
 * default/rebel-base): spec.ports[0].port: expected number, received string`.
 */
export function parseManifest(
  text: string,
  source: string,
  opts: ValidateOptions = {},
): ManifestObject[] {
  const docs = parseAllDocuments(text);
  // An empty stream is not an array of documents.
  if (!Array.isArray(docs)) return [];
  const out: ManifestObject[] = [];
  docs.forEach((doc, i) => {
    const document = i + 1;
    const [syntax] = doc.errors;
    if (syntax !== undefined) throw yamlError(source, document, syntax);
    if (doc.contents === null) return; // `---` with nothing after it
    let raw: unknown;
    try {
      raw = doc.toJS({ maxAliasCount: 1000 });
    } catch (err) {
      throw invalid(`${source}: document ${document}: ${errorMessage(err)}`);
    }
    if (raw === null || raw === undefined) return;
    if (isList(raw)) {
      const items = raw.items;
      if (!Array.isArray(items)) {
        throw invalid(`${source}: document ${document} (${raw.kind}): items: expected array`);
      }
      items.forEach((item: unknown, j) => {
        out.push(validated(item, source, document, j + 1, opts));
      });
      return;
    }
    out.push(validated(raw, source, document, undefined, opts));
  });
  return out;
}

/** Loads `-f` arguments in order; see the module comment. */
export async function loadManifests(
  paths: readonly string[],
  opts: LoadManifestOptions = {},
): Promise<ManifestObject[]> {
  const out: ManifestObject[] = [];
  for (const path of paths) {
    if (path === '-') {
      const text = await (opts.readStdin ?? readProcessStdin)();
      out.push(...parseManifest(text, STDIN_SOURCE, opts));
      continue;
    }
    for (const file of await manifestFiles(path)) {
      out.push(...parseManifest(await readText(file), file, opts));
    }
  }
  return out;
}

/** The files a `-f PATH` names: the file itself, or a directory's manifest files by name. */
export async function manifestFiles(path: string): Promise<string[]> {
  let isDir: boolean;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch (err) {
    throw notFound(path, err);
  }
  if (!isDir) return [path];
  const names = await readdir(path);
  return names
    .filter((n) => MANIFEST_EXTENSIONS.some((ext) => n.toLowerCase().endsWith(ext)))
    .sort()
    .map((n) => join(path, n));
}

function validated(
  raw: unknown,
  source: string,
  document: number,
  item: number | undefined,
  opts: ValidateOptions,
): ManifestObject {
  const r = validateObject(raw, opts);
  if (r.ok) return { info: r.info, object: r.object, source, document, item };
  const what = describeRaw(raw, opts.namespace);
  const where = `document ${document}${item === undefined ? '' : `, item ${item}`}`;
  throw invalid(
    `${source}: ${where}${what === '' ? '' : ` (${what})`}: ${formatProblem(r.problem)}`,
  );
}

function isList(raw: unknown): raw is Record<string, unknown> & { kind: string } {
  // `List` and typed lists such as `ServiceList`, as `kubectl get -o yaml` prints them.
  return (
    isRecord(raw) &&
    typeof raw.kind === 'string' &&
    raw.kind.endsWith('List') &&
    'items' in raw &&
    (raw.kind === 'List' || typeof raw.apiVersion === 'string')
  );
}

function yamlError(source: string, document: number, err: YAMLError): ClusterMeshError {
  const pos = err.linePos?.[0];
  // yaml's own message repeats the position and adds a source excerpt on further lines.
  const reason = (err.message.split('\n')[0] ?? err.code)
    .replace(/ at line \d+, column \d+:?$/, '')
    .trim();
  const at = pos === undefined ? '' : `line ${pos.line}, column ${pos.col}: `;
  return invalid(`${source}: document ${document}: ${at}invalid YAML: ${reason}`);
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw notFound(file, err);
  }
}

function notFound(path: string, err: unknown): ClusterMeshError {
  const code = (err as NodeJS.ErrnoException).code;
  return invalid(
    code === 'ENOENT' ? `the path "${path}" does not exist` : `${path}: ${errorMessage(err)}`,
  );
}

function invalid(message: string): ClusterMeshError {
  return new ClusterMeshError(ErrorCode.InvalidArgument, message);
}

async function readProcessStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) {
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  }
  return Buffer.concat(chunks).toString('utf8');
}
