/**
 * Every resource limit sorac enforces on untrusted input, stated once: its name, its default, the
 * environment variable that raises it and what it guards. Readers, the parser, the config loader
 * and the checker call `limit(name)` for the value in force and throw `limitExceeded(...)` (a
 * LimitError: a SoracError that names the limit and how to raise it) when input goes past it.
 *
 * The defaults are far above anything a real checkpoint or model needs (the largest Open-Sora
 * checkpoints have a few thousand tensors, at most 5 dims, nesting < 10) and far below what makes
 * the process hang or run out of memory. docs/security.md lists the same table
 * (tests/fuzz/limits.test.ts keeps the two identical).
 *
 * Keep this an object of plain entries: other modules add their own limits here.
 */
import type { Code } from './codes.ts';
import { type ErrorDetails, SoracError } from './errors.ts';

export interface LimitInfo {
  readonly default: number;
  /** The environment variable that overrides the default (a positive integer). */
  readonly env: string;
  /** What the limit guards, for the error message and docs/security.md. */
  readonly guards: string;
}

export const LIMITS = {
  nestingDepth: {
    default: 1000,
    env: 'SORAC_MAX_NESTING',
    guards: 'nesting depth of pickles, JSON headers/indexes/configs and `--set` values',
  },
  headerEntries: {
    default: 200_000,
    env: 'SORAC_MAX_HEADER_ENTRIES',
    guards: 'tensors in one checkpoint file (safetensors header, pickle), records in a zip central directory, keys in an index weight_map',
  },
  tensorDims: {
    default: 64,
    env: 'SORAC_MAX_DIMS',
    guards: 'dimensions of one tensor shape (safetensors header, pickled view)',
  },
  pickleLongBytes: {
    default: 4096,
    env: 'SORAC_MAX_PICKLE_LONG_BYTES',
    guards: 'bytes of one pickled integer (LONG1/LONG4)',
  },
  pickleObjects: {
    default: 2_000_000,
    env: 'SORAC_MAX_PICKLE_OBJECTS',
    guards: 'objects a pickle builds plus entries visited when flattening it (shared references counted each time)',
  },
  zipExpansionRatio: {
    default: 200,
    env: 'SORAC_MAX_ZIP_RATIO',
    guards: 'inflated size / compressed size of a deflated zip record',
  },
  viewExpansionRatio: {
    default: 64,
    env: 'SORAC_MAX_VIEW_RATIO',
    guards: 'bytes a strided (e.g. stride-0) view materialises / bytes of its storage record (views under 16 MiB are exempt)',
  },
  exprDepth: {
    default: 1000,
    env: 'SORAC_MAX_EXPR_DEPTH',
    guards: 'operators chained in one `.sora` expression (e.g. `1+1+…`)',
  },
  instances: {
    default: 200_000,
    env: 'SORAC_MAX_INSTANCES',
    guards: 'module instances created while checking a model (blocks × depth, nested repeats)',
  },
  parameters: {
    default: 1e13,
    env: 'SORAC_MAX_PARAMETERS',
    guards: 'parameters of a checked model (sum of parameter element counts)',
  },
  fileEntries: {
    default: 100_000,
    env: 'SORAC_MAX_DIR_ENTRIES',
    guards: 'files visited when walking a checkpoint or experiment directory',
  },
} as const satisfies Record<string, LimitInfo>;

export type LimitName = keyof typeof LIMITS;

/** The value in force: the environment variable when it is a positive number, else the default. */
export function limit(name: LimitName, env: Readonly<Record<string, string | undefined>> = process.env): number {
  const info = LIMITS[name];
  const raw = env[info.env];
  if (raw !== undefined && raw.trim() !== '') {
    const v = Number(raw);
    if (Number.isFinite(v) && v > 0) return Math.floor(v);
  }
  return info.default;
}

/** A resource limit was exceeded: `limit` names it; the hint says how to raise it. */
export class LimitError extends SoracError {
  constructor(
    code: Code,
    public readonly limit: LimitName,
    public readonly value: number | bigint,
    message: string,
    details: ErrorDetails = {},
  ) {
    super(code, message, details);
    this.name = 'LimitError';
  }
}

/**
 * Build the error for `what` (e.g. "safetensors header has 300000 tensors") going past `name`.
 * The message ends with the limit's value; the hint names the environment variable.
 */
export function limitExceeded(code: Code, name: LimitName, what: string, value: number | bigint, details: ErrorDetails = {}): LimitError {
  const info = LIMITS[name];
  const cur = limit(name);
  return new LimitError(code, name, value, `${what}: more than the limit ${name} = ${cur} (${info.guards})`, {
    ...details,
    hint: `${details.hint ? details.hint + '\n' : ''}if the input is trusted and really this large, raise the limit: ${info.env}=${Math.max(cur * 10, Number(value) || 0)}`,
  });
}
