/**
 * Compiler entry points: load a .sora program, apply a config, elaborate the model into a
 * module tree + keymap, and trace entry points into graphs. Pure: all I/O goes through Host.
 */
import { type Span, dedupeDiagnostics, diag, hasErrors } from '../core/diagnostics.ts';
import { type Keymap, type KeymapEntry, contractHash } from '../core/keymap.ts';
import type * as A from '../grammar/ast.ts';
import { applyConfig } from './config.ts';
import { Abort, Interp, paramsOf } from './interp.ts';
import { type CompiledModel, type CompileOptions, type EntryInfo, registerInternals } from './model.ts';
import { policyConflicts, readPolicy } from './policy.ts';
import { type Host, loadProgram, suggest } from './program.ts';
import { type Instance, NONE, toJson } from './values.ts';

export type { CompiledModel, CompileOptions, ConfigInput, EntryInfo, Observer, TraceOptions, TraceResult } from './model.ts';
export { traceEntry } from './trace.ts';

export function compile(opts: CompileOptions): CompiledModel {
  const program = opts.program ?? loadProgram(opts.file, opts.host, { ...(opts.rootText !== undefined ? { rootText: opts.rootText } : {}), ...(opts.cwd ? { cwd: opts.cwd } : {}), ...(opts.parseCache ? { parseCache: opts.parseCache } : {}) });
  const diagnostics = [...program.diagnostics];
  const fail = (): CompiledModel => deepFreeze({ diagnostics, program, entries: [] });
  if (hasErrors(diagnostics)) return fail();
  const models = program.root.ast.decls.filter((d): d is A.ModuleDecl => d.kind === 'module' && d.isModel);
  let decl: A.ModuleDecl | undefined;
  if (opts.model) {
    decl = models.find((m) => m.name.name === opts.model);
    if (!decl) {
      diagnostics.push(diag('SORA2003', `no model named "${opts.model}" in ${program.root.display}`, undefined, { hint: suggest(opts.model, models.map((m) => m.name.name)) ?? `models: ${models.map((m) => m.name.name).join(', ') || 'none'}` }));
      return fail();
    }
  } else if (models.length === 1) decl = models[0];
  else {
    diagnostics.push(
      diag('SORA2010', models.length ? `${program.root.display} declares ${models.length} models (${models.map((m) => m.name.name).join(', ')}); choose one with --model` : `${program.root.display} declares no model`, models.length ? models[1]!.name.span : program.root.ast.span, {
        hint: models.length ? undefined : 'declare one with `model Name version "1.0" { config { ... } ... }`',
      }),
    );
    return fail();
  }
  const interp = new Interp(program);
  interp.observe = opts.observe;
  const rootFile = program.root;
  // dtype policy
  const policy = readPolicy(decl, diagnostics, opts.dtype);
  interp.policy = policy;
  interp.compute = policy.compute;
  interp.lenientAsserts = !!opts.lenientAsserts;
  // config
  const args = applyConfig(decl, opts.config, diagnostics);
  if (hasErrors(diagnostics)) return fail();
  let root: Instance;
  try {
    root = interp.instantiate(decl, rootFile, args, '');
  } catch (e) {
    if (!(e instanceof Abort)) throw e;
    diagnostics.push(...dedupeDiagnostics(interp.diags));
    return fail();
  }
  diagnostics.push(...dedupeDiagnostics(interp.diags));
  interp.diags.length = 0;
  diagnostics.push(...policyConflicts(policy, interp.instancePaths));
  const config: Record<string, unknown> = {};
  for (const p of paramsOf(decl)) config[p.name.name] = toJson(root.env.get(p.name.name) ?? NONE);
  // keymap
  const tensors: Record<string, KeymapEntry> = {};
  const firstSpan = new Map<string, Span>();
  for (const s of interp.slots) {
    if (tensors[s.key]) {
      diagnostics.push(diag('SORA2002', `two declarations produce the checkpoint key "${s.key}"`, s.span, { related: [{ span: firstSpan.get(s.key)!, message: 'first declared here' }] }));
      continue;
    }
    firstSpan.set(s.key, s.span);
    tensors[s.key] = {
      shape: s.shape,
      dtype: s.dtype,
      kind: s.kind,
      source: `${s.span.file}:${s.span.start.line}:${s.span.start.col}`,
      ...(s.via ? { via: `${s.via.file}:${s.via.start.line}:${s.via.start.col}` } : {}),
      ...(s.aliasOf ? { alias: s.aliasOf } : {}),
    };
  }
  const entries = decl.members
    .filter((m): m is A.FnDecl => m.kind === 'fn' && m.entry)
    .map((f) => ({
      name: f.name.name,
      decl: f,
      inputs: f.params.map((p) => ({ name: p.name.name, optional: !!p.type?.optional || (p.default?.kind === 'none'), ...(p.type ? { type: p.type } : {}) })),
      outputs: outputNames(f),
    }));
  // `uncast: [name]` must name a float input of an entry
  for (const name of policy.uncast) {
    const inputs = entries.flatMap((e) => e.inputs);
    if (!inputs.some((i) => i.name === name))
      diagnostics.push(diag('SORA2001', `dtype rule "uncast" names "${name}", which is not an entry input`, policy.spans.uncast ?? decl.name.span, { hint: suggest(name, inputs.map((i) => i.name)) ?? `inputs: ${[...new Set(inputs.map((i) => i.name))].join(', ')}` }));
  }
  if (!entries.length) diagnostics.push(diag('SORA2010', `model ${decl.name.name} has no entry point`, decl.name.span, { hint: 'declare one with `entry forward(x: f32[B, C]) -> (out: f32[B, C]) { ... }`' }));
  const keymap: Keymap = {
    format: 'sorac.keymap/1',
    model: decl.name.name,
    version: decl.version?.value ?? '0',
    config,
    contract: contractHash(tensors),
    tensors,
  };
  const model: CompiledModel = deepFreeze({ diagnostics, program, modelName: decl.name.name, version: decl.version?.value ?? '0', config, policy, keymap, entries });
  registerInternals(model, { root, decl });
  return model;
}

function outputNames(f: A.FnDecl): string[] {
  if (!f.ret) return ['output'];
  if (f.ret.length === 1) return [f.ret[0]!.name?.name ?? 'output'];
  return f.ret.map((r, i) => r.name?.name ?? `output_${i}`);
}

/**
 * Freeze a stage output (and the plain data in it) so that no consumer can change what another sees.
 * The program (parsed sources, shared with tracing) and AST nodes are left as they are: they are the
 * compiler's own inputs, not outputs.
 */
function deepFreeze<T>(m: T): T {
  const seen = new Set<unknown>();
  const freeze = (v: unknown, depth: number): void => {
    if (v === null || typeof v !== 'object' || seen.has(v) || depth > 64) return;
    seen.add(v);
    if (v instanceof Map || v instanceof Set) return;
    Object.freeze(v);
    for (const x of Object.values(v)) freeze(x, depth + 1);
  };
  const o = m as Record<string, unknown>;
  for (const [k, v] of Object.entries(o)) if (k !== 'program' && k !== 'entries') freeze(v, 0);
  // entries hold AST declarations: freeze the entry records, not the AST they point to
  for (const e of (o.entries as object[] | undefined) ?? []) Object.freeze(e);
  Object.freeze(o.entries);
  return Object.freeze(m);
}
