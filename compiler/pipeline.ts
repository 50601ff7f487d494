/**
 * Pipelines: a `pipeline` declaration names the components of a whole inference pipeline (tokenizer,
 * text encoder, diffusion transformer, VAE, scheduler), where each one's weights come from, each
 * model's config, and the generation settings. Compiling one compiles every model component at its
 * config and checks that the components fit each other, from their entry signatures and keymaps:
 * the text encoder's output channels are the transformer's caption channels, the tokenizer's length is
 * the rows of the transformer's null caption, the VAE's latent channels are the transformer's input
 * channels. A mismatch is a compile error at the component, with the related declarations and the fix.
 * Nothing here reads weights or runs anything (that is api/generate.ts).
 */
import { type Diagnostic, type RelatedInfo, type Span, dedupeDiagnostics, diag, hasErrors } from '../core/diagnostics.ts';
import type { IrGraph } from '../core/ir.ts';
import type * as A from '../grammar/ast.ts';
import { compile } from './compile.ts';
import { applyConfig } from './config.ts';
import { Abort, Interp } from './interp.ts';
import type { CompiledModel, EntryInfo } from './model.ts';
import { DEFAULT_POLICY } from './policy.ts';
import { type Host, type LoadedFile, type Program, loadProgram, suggest } from './program.ts';
import { traceEntry } from './trace.ts';
import { type Instance, type Value, toJson, typeName } from './values.ts';

/** The roles a pipeline fills, in the order they run. */
export const ROLES = ['tokenizer', 'text_encoder', 'tokenizer_2', 'text_encoder_2', 'transformer', 'vae', 'scheduler'] as const;
export type Role = (typeof ROLES)[number];
/** Roles every pipeline declares; the second text encoder (a pooled one: Open-Sora 2.0's CLIP -> y_vec) is optional. */
export const REQUIRED_ROLES: readonly Role[] = ['tokenizer', 'text_encoder', 'transformer', 'vae', 'scheduler'];

type OptionType = 'int' | 'float' | 'bool' | 'str';
interface OptionSpec {
  readonly type: OptionType;
  readonly default?: unknown;
  readonly oneOf?: readonly string[];
  readonly min?: number;
  /** the option may be `none` (its default then is null) */
  readonly nullable?: boolean;
  /** why a value outside oneOf is refused (said in the error) */
  readonly why?: string;
}

/** Builtin component kinds (a model component is any `model` the pipeline file imports). */
export const COMPONENT_KINDS: Readonly<Record<string, { readonly role: Role; readonly options: Readonly<Record<string, OptionSpec>>; readonly doc: string }>> = {
  t5_tokenizer: {
    role: 'tokenizer',
    doc: 'SentencePiece T5 tokenizer with the Hugging Face T5Tokenizer(legacy=True) semantics (spiece.model or tokenizer.json)',
    options: {
      max_length: { type: 'int', min: 1 },
      /** Open-Sora's prompt cleaning (text_preprocessing: clean_caption twice), as the 1.0-1.3 inference scripts do */
      clean: { type: 'bool', default: false },
    },
  },
  clip_tokenizer: {
    role: 'tokenizer_2',
    doc: 'CLIP BPE tokenizer (vocab.json + merges.txt) with the transformers CLIPTokenizer semantics',
    options: {
      max_length: { type: 'int', min: 2 },
    },
  },
  rflow_v2: {
    role: 'scheduler',
    doc: "Open-Sora 2.0's flow sampler (opensora/utils/sampling.py: get_schedule with the resolution/frame shift, I2VDenoiser guidance), text-to-video",
    options: {
      /** SamplingOption.num_steps */
      num_sampling_steps: { type: 'int', default: 50, min: 1 },
      /** SamplingOption.guidance (text guidance) */
      cfg_scale: { type: 'float', default: 7.5 },
      /** SamplingOption.guidance_img: the image guidance of i2v/v2v; multiplies a zero difference in text-to-video */
      guidance_img: { type: 'float', default: 3.0 },
      text_osci: { type: 'bool', default: true },
      image_osci: { type: 'bool', default: true },
      /** i2v only upstream (the script turns it off for t2v) */
      scale_temporal_osci: { type: 'bool', default: true },
      shift: { type: 'bool', default: true },
      /** a fixed shift alpha instead of the one from the resolution and frame count */
      flow_shift: { type: 'float', default: null, nullable: true },
      base_shift: { type: 'float', default: 1.0 },
      max_shift: { type: 'float', default: 3.0 },
      /** SamplingOption.method: "i2v" (the released denoiser, which also does text-to-video); "distill" is not supported */
      method: { type: 'str', default: 'i2v', oneOf: ['i2v'], why: 'the distilled denoiser (method="distill", used by the t2i2v Flux image stage) is not supported yet' },
    },
  },
  rflow: {
    role: 'scheduler',
    doc: "rectified flow (Open-Sora 1.2/1.3's RFLOW)",
    options: {
      num_sampling_steps: { type: 'int', default: 30, min: 1 },
      cfg_scale: { type: 'float', default: 7.0 },
      use_timestep_transform: { type: 'bool', default: false },
      use_discrete_timesteps: { type: 'bool', default: false },
      num_timesteps: { type: 'int', default: 1000, min: 1 },
      /** v1.3 RFLOW: guidance 1.0 on odd steps after the first 10 (get_oscillation_gs, force_num 10) */
      use_oscillation_guidance: { type: 'bool', default: false },
      /** v1.3 RFLOW: fix_guidance_flaw, v·(0.7·std(cond)/std(v) + 0.3) */
      use_flaw_fix: { type: 'bool', default: false },
    },
  },
  iddpm: {
    role: 'scheduler',
    doc: "respaced DDPM with learned sigma (Open-Sora 1.0/1.1's IDDPM)",
    options: {
      num_sampling_steps: { type: 'int', default: 100, min: 1 },
      cfg_scale: { type: 'float', default: 7.0 },
      cfg_channel: { type: 'int', default: 3, min: 1 },
    },
  },
};

/** Pipeline config keys with a meaning to `sorac generate` (all optional; others are free settings). */
export const GENERATION_KEYS = ['release', 'resolution', 'aspect_ratio', 'height', 'width', 'num_frames', 'fps', 'save_fps', 'seed', 'aes', 'flow', 'camera_motion', 'motion_score', 'cond_type', 'vae_micro_batch'] as const;

export interface PipelineComponent {
  readonly name: Role;
  /** `model` (a compiled .sora model) or a builtin kind (t5_tokenizer, rflow, iddpm). */
  readonly kind: string;
  readonly span: Span;
  /** Where its files come from, as written (relative paths are resolved against the pipeline's directory). */
  readonly from?: string;
  readonly fromSpan?: Span;
  /** Builtin kinds: their options (defaults filled in). Models: the config kwargs written in the pipeline. */
  readonly options: Readonly<Record<string, unknown>>;
  readonly model?: CompiledModel;
  /** Model components: the entries the pipeline uses (forward; the VAE's video decode/encode). */
  readonly entries?: Readonly<Record<string, string>>;
}

export interface CompiledPipeline {
  readonly diagnostics: Diagnostic[];
  readonly program: Program;
  readonly name?: string;
  readonly version?: string;
  /** The pipeline's config (generation settings), after --set overrides. */
  readonly config: Readonly<Record<string, unknown>>;
  readonly components: Readonly<Partial<Record<Role, PipelineComponent>>>;
  /** Directory relative `from` paths are resolved against. */
  readonly dir: string;
}

export interface PipelineOptions {
  readonly file: string;
  readonly host: Host;
  readonly cwd?: string;
  readonly rootText?: string;
  /** Which pipeline, when the file declares several. */
  readonly pipeline?: string;
  /** `--set k=v` (a pipeline config key) and `--set component.k=v` (a component's config or option). */
  readonly set?: readonly (readonly [string, string])[];
  /** Programmatic overrides of the pipeline config. */
  readonly values?: Readonly<Record<string, unknown>>;
  /** Programmatic overrides of component options / model configs: { scheduler: { num_sampling_steps: 10 } }. */
  readonly componentValues?: Readonly<Partial<Record<Role, Readonly<Record<string, unknown>>>>>;
  /** Where components' weights come from instead of their `from` (`--weights transformer=./ckpts/stdit3`), resolved against `cwd`. */
  readonly weights?: Readonly<Partial<Record<Role, string>>>;
  /**
   * dtype policy overrides for the model components (`--dtype compute=bf16` for all of them,
   * `--dtype transformer.compute=bf16` for one): role -> rule -> dtype, with `*` for every model component.
   */
  readonly dtype?: Readonly<Partial<Record<Role | '*', Readonly<Record<string, string>>>>>;
}

/** Whether a parsed file declares a pipeline (so `sorac check` knows which compiler to use). */
export function isPipelineFile(ast: A.SourceFile): boolean {
  return ast.decls.some((d) => d.kind === 'pipeline');
}

function dirOf(p: string): string {
  const i = Math.max(p.lastIndexOf('/'), p.lastIndexOf('\\'));
  return i < 0 ? '.' : p.slice(0, i) || '/';
}

export function compilePipeline(opts: PipelineOptions): CompiledPipeline {
  const program = loadProgram(opts.file, opts.host, { ...(opts.rootText !== undefined ? { rootText: opts.rootText } : {}), ...(opts.cwd ? { cwd: opts.cwd } : {}) });
  const diagnostics = [...program.diagnostics];
  const dir = dirOf(program.root.path);
  const empty = (): CompiledPipeline => Object.freeze({ diagnostics, program, config: {}, components: {}, dir });
  if (hasErrors(diagnostics)) return empty();
  const decls = program.root.ast.decls.filter((d): d is A.PipelineDecl => d.kind === 'pipeline');
  let decl: A.PipelineDecl | undefined;
  if (opts.pipeline) {
    decl = decls.find((d) => d.name.name === opts.pipeline);
    if (!decl) {
      diagnostics.push(diag('SORA8006', `no pipeline named "${opts.pipeline}" in ${program.root.display}`, undefined, { hint: suggest(opts.pipeline, decls.map((d) => d.name.name)) ?? `pipelines: ${decls.map((d) => d.name.name).join(', ') || 'none'}` }));
      return empty();
    }
  } else if (decls.length === 1) decl = decls[0];
  else {
    diagnostics.push(
      diag('SORA8006', decls.length ? `${program.root.display} declares ${decls.length} pipelines (${decls.map((d) => d.name.name).join(', ')}); choose one` : `${program.root.display} declares no pipeline`, decls[1]?.name.span ?? program.root.ast.span, {
        hint: decls.length ? 'pass --pipeline NAME' : 'declare one with `pipeline Name version "1.0" { config { ... } tokenizer = ... }`',
      }),
    );
    return empty();
  }
  const file = program.root;

  // --set: `key=v` for the pipeline config, `component.key=v` for a component
  const pipelineSets: [string, string][] = [];
  const componentSets = new Map<string, [string, string][]>();
  for (const [k, v] of opts.set ?? []) {
    const dot = k.indexOf('.');
    if (dot < 0) pipelineSets.push([k, v]);
    else {
      const comp = k.slice(0, dot);
      if (!(ROLES as readonly string[]).includes(comp)) {
        diagnostics.push(diag('SORA8001', `--set ${k}: "${comp}" is not a component of a pipeline`, undefined, { hint: suggest(comp, ROLES) ?? `components: ${ROLES.join(', ')}` }));
        continue;
      }
      componentSets.set(comp, [...(componentSets.get(comp) ?? []), [k.slice(dot + 1), v]]);
    }
  }

  // the config, lets and asserts evaluate like a model's (the same interpreter, the same messages)
  const settings: A.ModuleDecl = {
    kind: 'module',
    isModel: true,
    name: decl.name,
    params: [],
    members: decl.members.filter((m): m is A.ConfigBlock | A.LetStmt | A.AssertStmt => m.kind !== 'component'),
    span: decl.span,
  };
  const args = applyConfig(settings, { set: pipelineSets, ...(opts.values ? { values: opts.values } : {}) }, diagnostics);
  if (hasErrors(diagnostics)) return empty();
  const interp = new Interp(program);
  interp.policy = DEFAULT_POLICY;
  let inst: Instance;
  try {
    inst = interp.instantiate(settings, file, args, '');
  } catch (e) {
    if (!(e instanceof Abort)) throw e;
    diagnostics.push(...dedupeDiagnostics(interp.diags));
    return empty();
  }
  diagnostics.push(...dedupeDiagnostics(interp.diags));
  interp.diags.length = 0;
  const config: Record<string, unknown> = {};
  for (const f of settings.members.flatMap((m) => (m.kind === 'config' ? m.fields : []))) config[f.name.name] = toJson(inst.env.get(f.name.name) ?? { k: 'none' });

  const components: Partial<Record<Role, PipelineComponent>> = {};
  for (const m of decl.members) {
    if (m.kind !== 'component') continue;
    const c = component(m, interp, inst, file, opts, componentSets.get(m.name.name) ?? [], diagnostics);
    if (!c) continue;
    if (components[c.name]) {
      diagnostics.push(diag('SORA2002', `component "${c.name}" is declared twice`, m.name.span, { related: [{ span: components[c.name]!.span, message: 'first declared here' }] }));
      continue;
    }
    components[c.name] = c;
  }
  for (const r of REQUIRED_ROLES)
    if (!components[r])
      diagnostics.push(diag('SORA8001', `pipeline ${decl.name.name} has no ${r}`, decl.name.span, { hint: `declare it, e.g. ${ROLE_EXAMPLE[r]}` }));
  if (!hasErrors(diagnostics)) diagnostics.push(...checkFit(components));
  const out: CompiledPipeline = { diagnostics, program, name: decl.name.name, version: decl.version?.value ?? '0', config: Object.freeze(config), components: Object.freeze(components), dir };
  return Object.freeze(out);
}

const ROLE_EXAMPLE: Record<Role, string> = {
  tokenizer: 'tokenizer = t5_tokenizer(max_length=300) from "DeepFloyd/t5-v1_1-xxl"',
  text_encoder: 'text_encoder = T5Encoder() from "DeepFloyd/t5-v1_1-xxl"',
  transformer: 'transformer = STDiT3(qk_norm=true) from "hpcai-tech/OpenSora-STDiT-v3"',
  vae: 'vae = OpenSoraVAE_V1_2() from "hpcai-tech/OpenSora-VAE-v1.2"',
  scheduler: 'scheduler = rflow(num_sampling_steps=30, cfg_scale=7.0)',
  tokenizer_2: 'tokenizer_2 = clip_tokenizer(max_length=77) from "openai/clip-vit-large-patch14"',
  text_encoder_2: 'text_encoder_2 = CLIPTextModel() from "openai/clip-vit-large-patch14"',
};

function component(m: A.ComponentDecl, interp: Interp, inst: Instance, file: LoadedFile, opts: PipelineOptions, sets: [string, string][], diagnostics: Diagnostic[]): PipelineComponent | undefined {
  const role = m.name.name;
  if (!(ROLES as readonly string[]).includes(role)) {
    diagnostics.push(diag('SORA8001', `"${role}" is not a pipeline component`, m.name.span, { hint: suggest(role, ROLES) ?? `components are: ${ROLES.join(', ')}` }));
    return undefined;
  }
  const call = m.value;
  if (call.kind !== 'call' || call.callee.kind !== 'name') {
    diagnostics.push(diag('SORA8004', `${role} must be a call such as ${ROLE_EXAMPLE[role as Role]}`, m.value.span));
    return undefined;
  }
  const callee = call.callee.name;
  // keyword arguments, evaluated in the pipeline's config scope
  const kw: Record<string, unknown> = {};
  const kwSpans: Record<string, Span> = {};
  const nameSpans: Record<string, Span> = {};
  for (const a of call.args) {
    if (!a.name) {
      diagnostics.push(diag('SORA8004', `${callee}(): pass options by name (name=value)`, a.value.span));
      return undefined;
    }
    let v: Value;
    try {
      v = interp.evalExpr(a.value, { vars: new Map(inst.env), self: inst, file } as never);
    } catch (e) {
      if (!(e instanceof Abort)) throw e;
      diagnostics.push(...interp.diags.splice(0));
      return undefined;
    }
    if (v.k === 'tensor' || v.k === 'slot' || v.k === 'module' || v.k === 'builtin') {
      diagnostics.push(diag('SORA8005', `${callee}(${a.name.name}=...): expected a config value, got ${typeName(v)}`, a.value.span));
      return undefined;
    }
    kw[a.name.name] = toJson(v);
    kwSpans[a.name.name] = a.value.span;
    nameSpans[a.name.name] = a.name.span;
  }
  const override = opts.weights?.[role as Role];
  // an override given on the command line is relative to where the command runs, not to the pipeline file
  const from = override !== undefined ? (override.startsWith('.') && opts.cwd ? `${opts.cwd}/${override}` : override) : m.from?.value;
  const builtin = COMPONENT_KINDS[callee];
  if (builtin) {
    if (builtin.role !== role) {
      diagnostics.push(diag('SORA8004', `${callee}() is a ${builtin.role}, not a ${role}`, call.callee.span, { hint: `use it as \`${builtin.role} = ${callee}(...)\`` }));
      return undefined;
    }
    const options = builtinOptions(callee, builtin.options, kw, kwSpans, nameSpans, sets, opts.componentValues?.[role as Role], call.span, diagnostics);
    if (override !== undefined && role === 'scheduler') diagnostics.push(diag('SORA8002', '--weights scheduler=...: a scheduler has no weights', m.span));
    if ((role === 'tokenizer' || role === 'tokenizer_2') && from === undefined) diagnostics.push(diag('SORA8002', 'the tokenizer needs `from "..."`: a directory or hub id holding spiece.model or tokenizer.json', m.span, { hint: 'e.g. tokenizer = t5_tokenizer(max_length=300) from "DeepFloyd/t5-v1_1-xxl"' }));
    if (role === 'scheduler' && m.from) diagnostics.push(diag('SORA8002', 'a scheduler has no weights: remove `from ...`', m.from.span));
    return { name: role as Role, kind: callee, span: m.span, ...(from !== undefined ? { from, fromSpan: m.from?.span ?? m.span } : {}), options };
  }
  const g = interp.global(file, callee);
  if (!g || g.kind !== 'module' || !g.decl.isModel) {
    const candidates = [...Object.keys(COMPONENT_KINDS), ...[...(interp.prog.scopes.get(file.path)?.entries() ?? [])].filter(([, d]) => d.kind === 'module' && d.decl.isModel).map(([n]) => n)];
    diagnostics.push(diag('SORA8004', `unknown component kind "${callee}"`, call.callee.span, { hint: suggest(callee, candidates) ?? `import a model (import { STDiT3 } from "../stdit3") or use one of ${Object.keys(COMPONENT_KINDS).join(', ')}` }));
    return undefined;
  }
  if (from === undefined) diagnostics.push(diag('SORA8002', `${role} = ${callee}(...) needs \`from "..."\`: where its weights are (a file, a directory, or a hub id)`, m.span, { hint: `e.g. ${ROLE_EXAMPLE[role as Role]}` }));
  const values = { ...kw, ...(opts.componentValues?.[role as Role] ?? {}) };
  const dtype = { ...(opts.dtype?.['*'] ?? {}), ...(opts.dtype?.[role as Role] ?? {}) };
  const model = compile({ file: g.file.path, host: opts.host, ...(opts.cwd ? { cwd: opts.cwd } : {}), model: callee, config: { values, set: sets }, ...(Object.keys(dtype).length ? { dtype } : {}) });
  // the model's own problems are reported where they are; a note ties them to this component
  for (const d of model.diagnostics) diagnostics.push(d.severity === 'error' ? { ...d, related: [...(d.related ?? []), { span: m.span, message: `compiling ${role} = ${callee}(...) here` }] } : d);
  if (hasErrors(model.diagnostics)) return undefined;
  const entries = entriesFor(role as Role, model, m.span, diagnostics);
  return { name: role as Role, kind: 'model', span: m.span, ...(from !== undefined ? { from, fromSpan: m.from?.span ?? m.span } : {}), options: values, model, ...(entries ? { entries } : {}) };
}

function builtinOptions(
  kind: string,
  specs: Readonly<Record<string, OptionSpec>>,
  kw: Record<string, unknown>,
  kwSpans: Record<string, Span>,
  nameSpans: Record<string, Span>,
  sets: readonly (readonly [string, string])[],
  values: Readonly<Record<string, unknown>> | undefined,
  span: Span,
  diagnostics: Diagnostic[],
): Record<string, unknown> {
  const raw: Record<string, { v: unknown; span?: Span; nameSpan?: Span; from: string }> = {};
  for (const [k, v] of Object.entries(kw)) raw[k] = { v, span: kwSpans[k]!, nameSpan: nameSpans[k]!, from: 'pipeline' };
  for (const [k, text] of sets) {
    let v: unknown = text;
    try {
      v = JSON.parse(text);
    } catch {
      // a bare string
    }
    raw[k] = { v, from: `--set ${k}=${text}` };
  }
  for (const [k, v] of Object.entries(values ?? {})) raw[k] = { v, from: 'option' };
  const out: Record<string, unknown> = {};
  for (const [k, r] of Object.entries(raw)) {
    const spec = specs[k];
    if (!spec) {
      diagnostics.push(diag('SORA8004', `${kind}() has no option "${k}"`, r.nameSpan ?? r.span ?? span, { hint: suggest(k, Object.keys(specs)) ?? `options: ${Object.keys(specs).join(', ')}` }));
      continue;
    }
    const ok =
      (spec.nullable && r.v === null) ||
      spec.type === 'int' ? Number.isSafeInteger(r.v) : spec.type === 'float' ? typeof r.v === 'number' && Number.isFinite(r.v) : spec.type === 'bool' ? typeof r.v === 'boolean' : typeof r.v === 'string';
    if (!ok || (r.v !== null && spec.min !== undefined && (r.v as number) < spec.min) || (r.v !== null && spec.oneOf && !spec.oneOf.includes(r.v as string))) {
      const want = spec.oneOf ? `one of ${spec.oneOf.map((x) => JSON.stringify(x)).join(', ')}` : `${spec.type === 'int' ? 'an int' : `a ${spec.type}`}${spec.min !== undefined ? ` >= ${spec.min}` : ''}${spec.nullable ? ' or none' : ''}`;
      diagnostics.push(diag('SORA8005', `${kind}(${k}=${JSON.stringify(r.v)}) (from ${r.from}): expected ${want}${spec.why ? ` (${spec.why})` : ''}`, r.span ?? span));
      continue;
    }
    out[k] = r.v;
  }
  for (const [k, spec] of Object.entries(specs)) {
    if (k in out) continue;
    if (spec.default === undefined && !spec.nullable) diagnostics.push(diag('SORA2008', `${kind}() needs ${k}=...`, span, { hint: `e.g. ${kind}(${k}=${spec.type === 'int' ? 300 : '...'})` }));
    else out[k] = spec.default;
  }
  return out;
}

/** The entries a role uses: forward for the text encoder and transformer; the VAE's video decode/encode. */
function entriesFor(role: Role, m: CompiledModel, span: Span, diagnostics: Diagnostic[]): Record<string, string> | undefined {
  const has = (n: string) => m.entries.some((e) => e.name === n);
  const need = (n: string) => {
    if (!has(n)) diagnostics.push(diag('SORA8004', `${role} ${m.modelName} has no entry "${n}"`, span, { hint: `entries: ${m.entries.map((e) => e.name).join(', ')}` }));
    return n;
  };
  if (role === 'text_encoder' || role === 'text_encoder_2' || role === 'transformer') return { forward: need('forward') };
  if (role === 'vae') {
    const decode = has('decode_video') ? 'decode_video' : need('decode');
    const encode = has('encode_video') ? 'encode_video' : has('encode') ? 'encode' : undefined;
    return { decode, ...(encode ? { encode } : {}) };
  }
  diagnostics.push(diag('SORA8004', `a ${role} is not a model: use ${ROLE_EXAMPLE[role]}`, span));
  return undefined;
}

// ---- do the components fit each other ----------------------------------------------------------------

interface Port {
  /** concrete dims (numbers) or symbols */
  readonly shape: readonly (number | string)[];
  readonly span: Span;
  readonly what: string;
}

function entryInfo(m: CompiledModel, name: string): EntryInfo | undefined {
  return m.entries.find((e) => e.name === name);
}

/** The traced graph's input or output value, with the declaration span of the entry parameter. */
function port(c: PipelineComponent, entry: string, graph: IrGraph, name: string, io: 'input' | 'output'): Port | undefined {
  const v = (io === 'input' ? graph.inputs : graph.outputs).find((x) => x.name === name);
  if (!v) return undefined;
  const info = entryInfo(c.model!, entry)!;
  const param = info.decl.params.find((p) => p.name.name === name);
  const span = io === 'input' && param ? param.span : info.decl.name.span;
  return { shape: v.shape, span, what: `${c.name}.${entry} ${io} ${name}` };
}

function traced(c: PipelineComponent | undefined, entry: string | undefined, diagnostics: Diagnostic[]): IrGraph | undefined {
  if (!c?.model || !entry) return undefined;
  const r = traceEntry(c.model, entry);
  if (!r.graph) {
    for (const d of r.diagnostics) diagnostics.push(d.severity === 'error' ? { ...d, related: [...(d.related ?? []), { span: c.span, message: `tracing ${c.name}.${entry} for the pipeline's checks` }] } : d);
    return undefined;
  }
  return r.graph;
}

const fmt = (s: readonly (number | string)[]) => `[${s.join(', ')}]`;

function checkFit(cs: Partial<Record<Role, PipelineComponent>>): Diagnostic[] {
  const out: Diagnostic[] = [];
  const te = cs.text_encoder;
  const te2 = cs.text_encoder_2;
  const tr = cs.transformer;
  const vae = cs.vae;
  const tok = cs.tokenizer;
  const sched = cs.scheduler;
  const teG = traced(te, te?.entries?.forward, out);
  const te2G = traced(te2, te2?.entries?.forward, out);
  const trG = traced(tr, tr?.entries?.forward, out);
  const vaeG = traced(vae, vae?.entries?.decode, out);
  const related = (...p: (Port | undefined)[]): RelatedInfo[] => p.filter((x): x is Port => !!x).map((x) => ({ span: x.span, message: `${x.what}: ${fmt(x.shape)}` }));
  // a packed-token transformer (Open-Sora 2.0's MMDiT: img [B, L, C·p²], txt, y_vec) or a latent-grid DiT (x, y)
  const packed = !!trG?.inputs.some((v) => v.name === 'img');
  const captionInput = packed ? 'txt' : 'y';
  // the second (pooled) text encoder and its tokenizer come together, and a transformer with y_vec needs them
  if (!!cs.tokenizer_2 !== !!te2)
    out.push(diag('SORA8001', cs.tokenizer_2 ? 'tokenizer_2 is declared without text_encoder_2' : 'text_encoder_2 is declared without tokenizer_2', (cs.tokenizer_2 ?? te2)!.span, { hint: `declare both, e.g. ${ROLE_EXAMPLE.tokenizer_2} and ${ROLE_EXAMPLE.text_encoder_2}` }));
  const yVec = trG && tr ? port(tr, 'forward', trG, 'y_vec', 'input') : undefined;
  if (yVec && !te2)
    out.push(diag('SORA8001', `transformer ${tr!.model!.modelName} takes a pooled text embedding y_vec ${fmt(yVec.shape)}: the pipeline needs text_encoder_2 (and tokenizer_2)`, tr!.span, { related: related(yVec), hint: `add ${ROLE_EXAMPLE.tokenizer_2} and ${ROLE_EXAMPLE.text_encoder_2}` }));
  if (te2 && trG && !yVec)
    out.push(diag('SORA8003', `text_encoder_2 gives a pooled embedding but transformer ${tr!.model!.modelName} has no y_vec input to take it`, te2.span, { related: [{ span: tr!.span, message: 'transformer declared here' }], hint: 'remove tokenizer_2 and text_encoder_2, or use a transformer with a y_vec input (MMDiT)' }));
  if (te2G && yVec) {
    const pooled = port(te2!, 'forward', te2G, te2G.outputs.find((v) => v.name === 'pooler_output')?.name ?? te2G.outputs[te2G.outputs.length - 1]!.name, 'output');
    const d = pooled?.shape[pooled.shape.length - 1];
    const c = yVec.shape[yVec.shape.length - 1];
    if (pooled && (pooled.shape.length !== 2 || (typeof d === 'number' && typeof c === 'number' && d !== c)))
      out.push(
        diag('SORA8003', pooled.shape.length !== 2 ? `text_encoder_2's output ${pooled.what} is ${fmt(pooled.shape)}, not a pooled [B, C] embedding` : `text_encoder_2 pools to ${d} channels but the transformer's y_vec takes ${c}`, tr!.span, {
          related: [{ span: te2!.span, message: 'text_encoder_2 declared here' }, ...related(pooled, yVec)],
          hint: pooled.shape.length !== 2 ? 'use a text encoder with a pooler_output [B, hidden_size] (CLIPTextModel)' : `make them equal: vec_in_dim=${d} in the transformer, or a text_encoder_2 with hidden_size=${c}`,
        }),
      );
  }
  // the sampler must fit the transformer's layout
  if (trG && sched) {
    const v2 = sched.kind === 'rflow_v2';
    if (v2 !== packed)
      out.push(
        diag('SORA8003', v2 ? `rflow_v2 samples Open-Sora 2.0's packed-token MMDiT (inputs img, txt, y_vec); transformer ${tr!.model!.modelName} takes a latent grid x` : `${sched.kind} samples a latent-grid DiT (input x); transformer ${tr!.model!.modelName} takes packed tokens img (Open-Sora 2.0)`, sched.span, {
          related: [{ span: tr!.span, message: 'transformer declared here' }],
          hint: v2 ? 'use rflow (Open-Sora 1.2/1.3) or iddpm (1.0/1.1) with this transformer' : 'use scheduler = rflow_v2(...) with an MMDiT',
        }),
      );
  }
  // text encoder -> transformer caption channels
  if (teG && trG) {
    const text = port(te!, 'forward', teG, teG.outputs[0]!.name, 'output');
    const y = port(tr!, 'forward', trG, captionInput, 'input');
    if (text && y) {
      const d = text.shape[text.shape.length - 1];
      const c = y.shape[y.shape.length - 1];
      if (typeof d === 'number' && typeof c === 'number' && d !== c)
        out.push(
          diag('SORA8003', `text_encoder produces ${d}-channel embeddings but transformer takes ${c} caption channels`, tr!.span, {
            related: [{ span: te!.span, message: 'text_encoder declared here' }, ...related(text, y)],
            hint: packed ? `make them equal: context_in_dim=${d} in the transformer, or a text encoder with d_model=${c}` : `make them equal: caption_channels=${d} in the transformer, or a text encoder with d_model=${c}`,
          }),
        );
    }
  }
  // tokenizer length -> the transformer's null caption (classifier-free guidance needs both the same length)
  const maxLength = tok?.options.max_length;
  const nullCaption = tr?.model?.keymap?.tensors['y_embedder.y_embedding'];
  if (typeof maxLength === 'number' && nullCaption && nullCaption.shape[0] !== maxLength)
    out.push(
      diag('SORA8003', `tokenizer max_length is ${maxLength} but the transformer's null caption y_embedder.y_embedding has ${nullCaption.shape[0]} rows: the unconditional batch of classifier-free guidance would not fit the prompts'`, tok!.span, {
        related: [{ span: tr!.span, message: `transformer declared here (model_max_length ${tr!.model!.config?.model_max_length ?? nullCaption.shape[0]})` }],
        hint: `use max_length=${nullCaption.shape[0]} in the tokenizer, or model_max_length=${maxLength} in the transformer`,
      }),
    );
  // VAE latent channels <-> transformer input/output channels (packed: latent channels · patch² per token)
  if (trG && vaeG) {
    const x = port(tr!, 'forward', trG, packed ? 'img' : 'x', 'input');
    const z = port(vae!, vae!.entries!.decode!, vaeG, vaeG.inputs[0]!.name, 'input');
    const o = port(tr!, 'forward', trG, trG.outputs[0]!.name, 'output');
    const p = packed ? Number(tr!.model!.config?.patch_size ?? 2) : 1;
    if (x && z) {
      const cx = packed ? x.shape[2] : x.shape[1];
      const cz = z.shape[1];
      if (typeof cx === 'number' && typeof cz === 'number' && cx !== cz * p * p)
        out.push(
          diag('SORA8003', packed ? `the VAE's latents have ${cz} channels, ${cz * p * p} per ${p}x${p} patch token, but the transformer takes ${cx}` : `the VAE's latents have ${cz} channels but the transformer takes ${cx}`, tr!.span, {
            related: [{ span: vae!.span, message: 'vae declared here' }, ...related(x, z)],
            hint: packed ? `in_channels=${cz * p * p} in the transformer, or a VAE with ${cx / (p * p)} latent channels` : `in_channels=${cz} in the transformer, or a VAE with ${cx} latent channels`,
          }),
        );
      const co = packed ? o?.shape[2] : o?.shape[1];
      if (typeof cx === 'number' && typeof co === 'number' && co !== cx && (packed || co !== 2 * cx))
        out.push(diag('SORA8003', packed ? `the transformer outputs ${co} channels per token for ${cx} input channels: rflow_v2 needs the velocity (${cx})` : `the transformer outputs ${co} channels for ${cx} input channels: a sampler needs the prediction (${cx}) or prediction and variance (${2 * cx})`, tr!.span, { related: related(x, o) }));
    }
  }
  return out;
}
