/**
 * Where `up` keeps mesh.json unless `--state-dir` says otherwise (relative to the working
 * directory). Apart from mesh-state.ts so that the CLI's option defaults, loaded on every
 * invocation, do not load its schema.
 */
export const DEFAULT_STATE_DIR = '.clustermesh';
