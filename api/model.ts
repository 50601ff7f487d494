/**
 * Models from files: read a `.sora` source and its config as a user gives them (with clear errors for
 * a missing, binary or non-UTF-8 file and an unreadable or invalid config), compile, check every entry
 * path, and validate a checkpoint against the keymap (the load report).
 */
import { readFileSync, statSync } from 'node:fs';
import { absentInputs, checkEntries, modelSources } from '../compiler/check.ts';
import { compile, type CompiledModel, type CompileOptions } from '../compiler/compile.ts';
import { fsHost } from '../compiler/host.ts';
import type { ParseCache } from '../compiler/program.ts';
import { resolve } from 'node:path';
import { isPipelineFile } from '../compiler/pipeline.ts';
import { parse } from '../grammar/parser.ts';
import { type Diagnostic, hasErrors } from '../core/diagnostics.ts';
import { SoracError } from '../core/errors.ts';
import { limit, limitExceeded } from '../core/limits.ts';
import { jsonDepth } from '../compiler/config.ts';
import { checkWeights, type LoadReport } from '../runtime/weights/load-report.ts';

export { absentInputs, checkEntries, modelSources };

/** Refuse what cannot be .sora source before the parser sees it: missing, a directory, binary, not UTF-8. */
export function checkSourceFile(file: string): void {
  let st;
  try {
    st = statSync(file);
  } catch (e) {
    throw new SoracError('SORA7001', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, { hint: 'pass the path of a .sora model file, e.g. examples/stdit3.sora', path: file });
  }
  if (st.isDirectory()) throw new SoracError('SORA7001', `${file} is a directory`, { hint: 'pass a .sora file', path: file });
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (e) {
    throw new SoracError('SORA7001', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { hint: 'check the file permissions', path: file });
  }
  if (buf.includes(0)) throw new SoracError('SORA1005', `${file} is a binary file, not .sora source`, { hint: 'pass a .sora text file', path: file });
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch {
    throw new SoracError('SORA1005', `${file} is not valid UTF-8 text`, { hint: 'save the file as UTF-8', path: file });
  }
}

/**
 * The parse isPipelineSource made, for the loadModel of the same file that follows it in `sorac
 * check` (one entry; used once, and only while the file's text and display path are unchanged).
 */
let probed: { readonly path: string; readonly entry: ParseCache extends Map<string, infer E> ? E : never } | undefined;

/** Whether a .sora file declares a pipeline (rather than models): parsed, not compiled. */
export function isPipelineSource(file: string): boolean {
  checkSourceFile(file);
  const text = readFileSync(file, 'utf8');
  const result = parse(text, file);
  probed = { path: resolve(file), entry: { text, display: file, result } };
  return isPipelineFile(result.ast);
}

/** A config JSON file as a JSON object (SORA7001 unreadable, SORA7002 not a JSON object). */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    if (statSync(path).isDirectory()) throw new SoracError('SORA7001', `--config ${path} is a directory`, { hint: 'pass a JSON file, e.g. config.json', path });
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (e instanceof SoracError) throw e;
    throw new SoracError('SORA7001', `cannot read --config ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { hint: 'check the path', path });
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new SoracError('SORA7002', `--config ${path} is not valid JSON: ${(e as Error).message}`, { hint: 'the config file must be a JSON object of config keys, e.g. {"depth": 4}', path });
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new SoracError('SORA7002', `--config ${path} must contain a JSON object`, { hint: 'e.g. {"hidden_size": 1152, "depth": 28}', path });
  const max = limit('nestingDepth');
  if (jsonDepth(v, max) > max) throw limitExceeded('SORA7030', 'nestingDepth', `--config ${path} nests more than ${max} levels deep`, max + 1, { path });
  return v as Record<string, unknown>;
}

export interface ModelSource {
  /** The .sora file. */
  readonly file: string;
  /** Directory relative paths are shown against (default: process.cwd()). */
  readonly cwd?: string;
  /** Which model, when the file declares several. */
  readonly model?: string;
  /** A config JSON file (flat, HF config.json, or constructor-style nested). */
  readonly configPath?: string;
  /** `--set k=v` overrides (value text is JSON or a bare string), applied after the file. */
  readonly set?: readonly (readonly [string, string])[];
  /** Programmatic overrides (already typed). */
  readonly values?: Readonly<Record<string, unknown>>;
  /** dtype policy overrides (`--dtype compute=bf16`). */
  readonly dtype?: Readonly<Record<string, string>>;
}

/** Read and compile a model file. Compile problems are diagnostics on the result; unreadable inputs throw. */
export function loadModel(src: ModelSource): CompiledModel {
  checkSourceFile(src.file);
  const config: CompileOptions['config'] = {
    ...(src.configPath ? { file: { path: src.configPath, values: readConfigFile(src.configPath) } } : {}),
    ...(src.set ? { set: src.set } : {}),
    ...(src.values ? { values: src.values } : {}),
  };
  const parseCache: ParseCache = new Map();
  if (probed) parseCache.set(probed.path, probed.entry);
  probed = undefined;
  return compile({ file: src.file, host: fsHost, parseCache, ...(src.cwd ? { cwd: src.cwd } : {}), ...(src.model ? { model: src.model } : {}), config, ...(src.dtype && Object.keys(src.dtype).length ? { dtype: src.dtype } : {}) });
}

export interface CheckWeightsOptions {
  /** Glob patterns of keys that may be missing (deliberate partial loads). */
  readonly allowMissing?: readonly string[];
  /** Training checkpoint dirs: which part to read. */
  readonly part?: 'ema' | 'model';
  readonly cwd?: string;
}

export interface CheckResult {
  readonly ok: boolean;
  /** Compile diagnostics and those of every entry path (optional inputs present and absent). */
  readonly diagnostics: Diagnostic[];
  readonly report?: LoadReport;
}

/** `sorac check`: every entry path, and with `weights` the load report. */
export async function checkModel(m: CompiledModel, opts: CheckWeightsOptions & { readonly weights?: string } = {}): Promise<CheckResult> {
  const ds = [...m.diagnostics];
  // each distinct module call traced once across the entry paths (Interp.memo): the same diagnostics
  // as tracing every instance (they are reported once per source location), without the graph
  if (!hasErrors(ds)) ds.push(...checkEntries(m, { checkOnly: true }));
  const ok = !hasErrors(ds);
  let report: LoadReport | undefined;
  if (ok && opts.weights && m.keymap) {
    const r = await checkWeights(m.keymap, opts.weights, { allowMissing: opts.allowMissing ?? [], weights: opts.weights, ...(opts.part ? { part: opts.part } : {}), ...(opts.cwd ? { cwd: opts.cwd } : {}) });
    if (r.error) throw r.error;
    report = r.report;
  }
  return { ok: ok && (report?.ok ?? true), diagnostics: ds, ...(report ? { report } : {}) };
}

export { compile, traceEntry } from '../compiler/compile.ts';
export type { CompiledModel, CompileOptions, ConfigInput, EntryInfo, TraceOptions, TraceResult } from '../compiler/compile.ts';
export { fsHost } from '../compiler/host.ts';
