/**
 * `sorac detect`: which bundled model (or `--model FILE.sora`) a checkpoint belongs to, and at which config,
 * from the checkpoint's header alone. Every model is compared by key patterns first (layer indices
 * collapsed: cheap, from a cached default keymap); the ones that share patterns get the full config
 * inference (compiler/infer.ts), verified by re-tracing at the inferred config.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compile } from '../compiler/compile.ts';
import { fsHost } from '../compiler/host.ts';
import { type FitReport, type HeaderShapes, type InferredValue, inferConfig, keyTemplate } from '../compiler/infer.ts';
import { type Program, displayPath, loadProgram } from '../compiler/program.ts';
import { SoracError } from '../core/errors.ts';
import { type OpenWeightsOptions, openWeights } from '../runtime/weights/store.ts';

/** The bundled models: examples/*.sora beside this package (pipelines' components are among them). */
export const EXAMPLES_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'examples');

export function bundledModels(): string[] {
  try {
    return readdirSync(EXAMPLES_DIR)
      .filter((f) => f.endsWith('.sora'))
      .sort()
      .map((f) => path.join(EXAMPLES_DIR, f));
  } catch {
    return [];
  }
}

export interface DetectCandidate {
  /** the .sora file (as shown: relative to cwd when inside it) */
  readonly file: string;
  readonly model: string;
  readonly version: string;
  /** key patterns (indices collapsed) shared with the checkpoint / all patterns of both: 0..1 */
  readonly patternOverlap: number;
  /** whether the full inference ran (patterns close enough) */
  readonly inferred: boolean;
  /** 0..1: tensors with equal keys and shapes at the inferred config / all tensors of both */
  readonly score: number;
  /** the keymap at the inferred config equals the checkpoint's keys and shapes */
  readonly exact: boolean;
  /** the inferred config (full; undetermined values from the base) */
  readonly config?: Readonly<Record<string, unknown>>;
  readonly values?: readonly InferredValue[];
  readonly fit?: FitReport;
  /** errors of the inferred config (an assert broken through a value the weights do not show) */
  readonly invalid?: readonly string[];
  /** config values that differ from the model's defaults, as `--set` arguments */
  readonly sets?: readonly string[];
  /** the exact commands to use the checkpoint */
  readonly commands?: readonly string[];
}

export interface DetectResult {
  readonly weights: string;
  readonly path?: string;
  readonly tensors: number;
  /** best first */
  readonly candidates: readonly DetectCandidate[];
  /** the best candidate when it fits exactly */
  readonly match?: DetectCandidate;
  readonly notes: readonly string[];
  /** milliseconds spent on models (pattern comparison + inference), not reading the header */
  readonly ms: number;
}

interface ModelInfo {
  readonly file: string;
  readonly mtimeMs: number;
  readonly program: Program;
  readonly model: string;
  readonly version: string;
  readonly defaults: Readonly<Record<string, unknown>>;
  readonly templates: ReadonlySet<string>;
}

/** Parsed programs and default-config key patterns, per file (and mtime): detection over many headers in one process reuses them. */
const infoCache = new Map<string, ModelInfo>();

function modelInfo(file: string): ModelInfo | undefined {
  let mtimeMs = 0;
  try {
    mtimeMs = statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
  const hit = infoCache.get(file);
  if (hit && hit.mtimeMs === mtimeMs) return hit;
  const program = loadProgram(file, fsHost);
  const m = compile({ file, host: fsHost, program });
  if (!m.keymap || m.diagnostics.some((d) => d.severity === 'error')) return undefined;
  const info: ModelInfo = { file, mtimeMs, program, model: m.keymap.model, version: m.keymap.version, defaults: m.keymap.config, templates: new Set(Object.keys(m.keymap.tensors).map(keyTemplate)) };
  infoCache.set(file, info);
  return info;
}

/** The pipelines that use a model, and as which component: `[pipeline file, component]`. */
function pipelineRoles(model: string, file?: string): [string, string][] {
  const dir = path.join(EXAMPLES_DIR, 'pipelines');
  const out: [string, string][] = [];
  let files: string[] = [];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.sora')).sort();
  } catch {
    return out;
  }
  for (const f of files) {
    const text = readFileSync(path.join(dir, f), 'utf8');
    const re = new RegExp(`^\\s*(\\w+)\\s*=\\s*${model}\\(`, 'm');
    const m = re.exec(text);
    // the model as the pipeline imports it: STDiT3 from "../stdit3" (1.2) is not STDiT3 from "../stdit3_v13"
    const from = new RegExp(`^\\s*import\\s*\\{[^}]*\\b${model}\\b[^}]*\\}\\s*from\\s*"([^"]+)"`, 'm').exec(text)?.[1];
    if (m && file && from && path.resolve(dir, `${from}.sora`) !== path.resolve(file)) continue;
    if (m) out.push([path.join(dir, f), m[1]!]);
  }
  return out;
}

const shellQuote = (s: string): string => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/**
 * Rank the models for a header. Pure apart from reading the .sora files (cached); `files` default to
 * the bundled models. `weights` is the spelling used in the printed commands.
 */
export function detectHeader(header: HeaderShapes, opts: { files?: readonly string[]; cwd?: string; weights?: string; maxInferred?: number } = {}): DetectCandidate[] {
  const cwd = opts.cwd ?? process.cwd();
  const files = [...new Set((opts.files ?? bundledModels()).map((f) => path.resolve(cwd, f)))];
  const hTemplates = new Set([...header.keys()].map(keyTemplate));
  const scored: { info: ModelInfo; overlap: number }[] = [];
  for (const f of files) {
    const info = modelInfo(f);
    if (!info) continue;
    let both = 0;
    for (const t of info.templates) if (hTemplates.has(t)) both++;
    const union = info.templates.size + hTemplates.size - both;
    scored.push({ info, overlap: union ? both / union : 0 });
  }
  scored.sort((a, b) => b.overlap - a.overlap);
  const best = scored[0]?.overlap ?? 0;
  const out: DetectCandidate[] = [];
  scored.forEach(({ info, overlap }, rank) => {
    const display = displayPath(info.file, cwd);
    const base = { file: display, model: info.model, version: info.version, patternOverlap: overlap };
    // full inference for the models whose key patterns are close to the best ones
    if (best === 0 || rank >= (opts.maxInferred ?? 3) || overlap < best * 0.5) {
      out.push({ ...base, inferred: false, score: 0, exact: false });
      return;
    }
    const r = inferConfig({ file: info.file, host: fsHost, header, program: info.program });
    if ('error' in r) {
      out.push({ ...base, inferred: false, score: 0, exact: false });
      return;
    }
    // values fitted only as a product (input_size[1] * input_size[2]) are not put in the commands: base values
    const cfg: Record<string, unknown> = { ...r.config };
    for (const v of r.values) {
      if (v.status !== 'undetermined' || !v.evidence?.includes('chosen so that')) continue;
      const el = /^(.*)\[(\d+)\]$/.exec(v.key);
      if (!el) cfg[v.key] = r.base[v.key];
      else if (Array.isArray(cfg[el[1]!]) && Array.isArray(r.base[el[1]!])) {
        const arr = [...(cfg[el[1]!] as unknown[])];
        arr[Number(el[2])] = (r.base[el[1]!] as unknown[])[Number(el[2])];
        cfg[el[1]!] = arr;
      }
    }
    const sets: string[] = [];
    for (const [k, v] of Object.entries(cfg)) if (JSON.stringify(v) !== JSON.stringify(info.defaults[k])) sets.push(`${k}=${JSON.stringify(v)}`);
    const w = shellQuote(opts.weights ?? 'WEIGHTS');
    const setArgs = sets.map((s) => ` --set ${shellQuote(s)}`).join('');
    const commands = [`sorac check ${shellQuote(display)} --weights ${w}${setArgs}`, `sorac run ${shellQuote(display)} --weights ${w}${setArgs} --inputs INPUTS.safetensors --out OUT.safetensors`];
    for (const [p, role] of pipelineRoles(info.model, info.file)) commands.push(`sorac generate ${shellQuote(displayPath(p, cwd))} --weights ${shellQuote(`${role}=${opts.weights ?? 'WEIGHTS'}`)} --prompt PROMPT -o out.mp4${sets.length ? `   # the pipeline builds ${role} at the release config; this checkpoint differs in ${sets.map((s) => s.split('=')[0]).join(', ')}` : ''}`);
    out.push({
      ...base,
      inferred: true,
      score: r.score,
      exact: r.exact,
      config: cfg,
      values: r.values.map((v) => {
        if (v.status !== 'undetermined' || !v.evidence?.includes('chosen so that')) return v;
        const el = /^(.*)\[(\d+)\]$/.exec(v.key);
        const base = el ? (cfg[el[1]!] as unknown[] | undefined)?.[Number(el[2])] : cfg[v.key];
        return { ...v, value: base, evidence: v.evidence.replace(/: \S+ chosen so that (.*) fits with (its|their) base value$/, ' (the shapes give only their product, through $1); base value kept: give them with --set') };
      }),
      fit: r.fit,
      ...(r.invalid ? { invalid: r.invalid } : {}),
      sets,
      commands,
    });
  });
  out.sort((a, b) => Number(b.exact) - Number(a.exact) || b.score - a.score || b.patternOverlap - a.patternOverlap);
  return out;
}

export interface DetectOptions extends OpenWeightsOptions {
  /** extra .sora files to try (`--model`) */
  readonly models?: readonly string[];
}

/** Open a checkpoint (headers only) and rank the models for it. */
export async function detect(weights: string, opts: DetectOptions = {}): Promise<DetectResult> {
  const cwd = opts.cwd ?? process.cwd();
  for (const m of opts.models ?? []) {
    try {
      statSync(path.resolve(cwd, m));
    } catch {
      throw new SoracError('SORA7001', `cannot read --model ${m}: no such file`, { hint: 'pass the path of a .sora model file', path: m });
    }
  }
  const store = await openWeights(weights, { ...opts, cwd });
  try {
    const header = new Map<string, readonly number[]>();
    for (const t of store.tensors.values()) header.set(t.key, t.shape);
    const t0 = performance.now();
    const files = [...bundledModels(), ...(opts.models ?? []).map((m) => path.resolve(cwd, m))];
    const candidates = detectHeader(header, { files, cwd, weights });
    const ms = performance.now() - t0;
    const top = candidates[0];
    return {
      weights,
      ...(store.resolved?.path ? { path: store.resolved.path } : {}),
      tensors: header.size,
      candidates,
      ...(top?.exact ? { match: top } : {}),
      notes: [...store.notes],
      ms,
    };
  } finally {
    await store.close();
  }
}
