/**
 * sorac migrate: shape migrations between model versions (docs/cli/migrate.md).
 *
 *   sorac migrate list
 *   sorac migrate diff FROM TO [--from-config f] [--from-set k=v] [--to-config f] [--to-set k=v] [--exit-code]
 *   sorac migrate new FROM TO -o migrations/NAME.ts
 *   sorac migrate plan MIGRATION [--in W] [--param k=v] [--reverse] [-o plan.json]
 *   sorac migrate apply MIGRATION --in W --out OUT [--reverse] [--param k=v] [--force] [--shard-size N] [--source-hash files|header]
 *
 * FROM/TO: a `.sora` model (compiled with its --*-config/--*-set), a keymap JSON from `sorac build`,
 * or a checkpoint. MIGRATION: a built-in name, a plan (.json) or a migration script (.ts).
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { basename, dirname, extname, resolve as resolvePath } from 'node:path';
import type { Command } from 'commander';
import { hasErrors } from '../../core/diagnostics.ts';
import type { Keymap } from '../../core/keymap.ts';
import type { Plan, Sig } from '../../api/migrate.ts';
import { collapseKeys, formatBytes, renderCollapsed } from '../../api/weights.ts';
import { prepareOutputFile, removeOwnTemps, writeFileAtomic } from '../../core/atomic.ts';
import { checkOutputApart } from '../../core/paths.ts';
import { canonicalJson } from '../../core/keymap.ts';
import { SoracError } from '../../core/errors.ts';
import { errorJson } from '../render.ts';
import type { RegisterCommand } from '../command.ts';
import { EXIT, usageError, type CliIO } from '../io.ts';
import { compileForWeights, compileFromCli, printDiagnostics, summarizeCounts } from '../model-args.ts';
import { progressBar } from '../progress.ts';

const VERSION = '0.1.0';
const collect = (v: string, p: string[] = []) => [...p, v];

interface SourceOpts {
  config?: string;
  set?: string[];
  part?: string;
  json?: boolean;
}

/** Signature of a FROM/TO source: `.sora` model, keymap JSON, or checkpoint. */
async function signatureOf(spec: string, o: SourceOpts, io: CliIO, side: string, other?: string): Promise<{ sig: Map<string, Sig>; label: string; kind: 'model' | 'keymap' | 'checkpoint' }> {
  if (spec.endsWith('.sora')) {
    // --X-config auto: the config inferred from the other side's checkpoint; a directory or hub id: its config.json
    if (o.config === 'auto' && (!other || other.endsWith('.sora') || other.endsWith('.json'))) throw usageError(`--${side.toLowerCase()}-config auto needs a checkpoint on the other side to infer the config from`);
    const m = o.config
      ? await compileForWeights(spec, { config: o.config, set: o.set ?? [] }, io, o.config === 'auto' ? other : undefined)
      : compileFromCli(spec, { set: o.set ?? [] }, io);
    if (hasErrors(m.diagnostics) || !m.keymap) {
      if (!o.json) printDiagnostics(m.diagnostics, m, io);
      throw new SoracError('SORA7010', `${side} ${spec} does not compile: ${summarizeCounts(m.diagnostics)}`, { hint: `fix the model or its --${side.toLowerCase()}-config/--${side.toLowerCase()}-set values`, data: { diagnostics: m.diagnostics } });
    }
    return { sig: new Map(Object.entries(m.keymap.tensors).map(([k, v]) => [k, { shape: v.shape, dtype: v.dtype }])), label: `${spec} (${m.modelName} v${m.version})`, kind: 'model' };
  }
  if ((o.config || o.set?.length) && !spec.endsWith('.sora')) throw usageError(`--${side.toLowerCase()}-config/--${side.toLowerCase()}-set apply to a .sora model, not to ${spec}`);
  if (spec.endsWith('.json') && existsSync(spec)) {
    let v: Partial<Keymap> | undefined;
    try {
      v = JSON.parse(readFileSync(spec, 'utf8'));
    } catch {
      v = undefined;
    }
    if (v && v.format === 'sorac.keymap/1' && v.tensors) return { sig: new Map(Object.entries(v.tensors).map(([k, t]) => [k, { shape: t.shape, dtype: t.dtype }])), label: `${spec} (keymap of ${v.model})`, kind: 'keymap' };
  }
  const { openWeights } = await import('../../api/weights.ts');
  const { storeSignature } = await import('../../api/migrate.ts');
  const store = await openWeights(spec, { cwd: io.cwd, part: o.part === 'model' ? 'model' : 'ema' });
  try {
    return { sig: storeSignature(store), label: spec, kind: 'checkpoint' };
  } finally {
    await store.close();
  }
}

function parseParams(ps: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of ps ?? []) {
    const i = p.indexOf('=');
    if (i <= 0) throw usageError(`--param ${p}: expected name=value`, 'e.g. --param rows=300');
    out[p.slice(0, i)] = p.slice(i + 1);
  }
  return out;
}

/** A migration argument: built-in name, plan JSON, or script. */
async function resolveMigration(spec: string, params: Record<string, string>, reverse: boolean, cwd: string): Promise<{ kind: 'builtin' | 'json' | 'script'; plan: Plan | ((sig: ReadonlyMap<string, Sig>) => Plan) }> {
  const { BUILTINS, getBuiltin } = await import('../../api/migrate.ts');
  const { planFromJson, planFromScript } = await import('../../api/migrate.ts');
  const { invertPlan } = await import('../../api/migrate.ts');
  if (BUILTINS.has(spec) || (!/[./\\]/.test(spec) && !existsSync(resolvePath(cwd, spec)))) {
    const b = getBuiltin(spec);
    const unknown = Object.keys(params).filter((p) => !b.params.some((q) => q.name === p));
    if (unknown.length) throw usageError(`${b.name} has no parameter ${unknown.join(', ')}`, b.params.length ? `parameters: ${b.params.map((p) => p.name).join(', ')}` : 'it takes no parameters');
    return { kind: 'builtin', plan: (sig) => b.plan(sig, params, reverse) };
  }
  if (Object.keys(params).length) throw usageError('--param applies to built-in migrations only');
  const ext = extname(spec);
  const path = resolvePath(cwd, spec);
  const plan = ext === '.ts' || ext === '.mts' ? await planFromScript(path) : planFromJson(path);
  return { kind: ext === '.json' ? 'json' : 'script', plan: reverse ? invertPlan(plan) : plan };
}

function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?$/i.exec(s.trim());
  if (!m) throw usageError(`--shard-size ${s}: expected a size like 5GB, 500MB or 1000000`);
  const unit = (m[2] ?? '').toLowerCase().replace(/b$/, '');
  const mult: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12, ki: 2 ** 10, mi: 2 ** 20, gi: 2 ** 30, ti: 2 ** 40 };
  if (!(unit in mult)) throw usageError(`--shard-size ${s}: unknown unit`);
  return Math.round(Number(m[1]) * mult[unit]!);
}

const fmtSig = (s: Sig) => `[${s.shape.join(',')}] ${s.dtype}`;

export const registerMigrate: RegisterCommand = (program: Command, io: CliIO, setExit) => {
  const mig = program.command('migrate').description('shape migrations between model versions: diff, new, plan, apply (see docs/cli/migrate.md)');

  mig
    .command('list')
    .description('list the built-in migrations')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      const { BUILTINS } = await import('../../api/migrate.ts');
      const list = [...BUILTINS.values()].map((b) => ({ name: b.name, description: b.description, upstream: b.upstream, params: b.params }));
      if (o.json) io.stdout(JSON.stringify({ builtins: list }, null, 2) + '\n');
      else for (const b of list) io.stdout(`${b.name}${b.params.length ? ` (--param ${b.params.map((p) => `${p.name}=…`).join(' ')})` : ''}\n  ${b.description}\n  upstream: ${b.upstream}\n`);
      setExit(EXIT.OK);
    });

  const sourceOptions = (c: Command) =>
    c
      .option('--from-config <file>', 'config for a .sora FROM: a JSON file, a directory or hub id holding config.json, or auto (inferred from a checkpoint TO)')
      .option('--from-set <key=value>', 'config override for a .sora FROM (repeatable)', collect, [] as string[])
      .option('--to-config <file>', 'config for a .sora TO: a JSON file, a directory or hub id holding config.json, or auto (inferred from a checkpoint FROM)')
      .option('--to-set <key=value>', 'config override for a .sora TO (repeatable)', collect, [] as string[])
      .option('--from-part <part>', 'training checkpoint dirs: ema or model', 'ema')
      .option('--to-part <part>', 'training checkpoint dirs: ema or model', 'ema');

  type DiffOpts = { fromConfig?: string; fromSet?: string[]; toConfig?: string; toSet?: string[]; fromPart?: string; toPart?: string; json?: boolean; exitCode?: boolean; out?: string; name?: string; force?: boolean };

  const runDiff = async (from: string, to: string, o: DiffOpts, name?: string) => {
    const a = await signatureOf(from, { ...(o.fromConfig ? { config: o.fromConfig } : {}), set: o.fromSet ?? [], ...(o.fromPart ? { part: o.fromPart } : {}), ...(o.json ? { json: true } : {}) }, io, 'FROM', to);
    const b = await signatureOf(to, { ...(o.toConfig ? { config: o.toConfig } : {}), set: o.toSet ?? [], ...(o.toPart ? { part: o.toPart } : {}), ...(o.json ? { json: true } : {}) }, io, 'TO', from);
    const { diffSignatures } = await import('../../api/migrate.ts');
    return { a, b, d: diffSignatures(a.sig, b.sig, name ? { name } : {}) };
  };

  sourceOptions(
    mig
      .command('diff')
      .description('compare two models/checkpoints (keys, shapes, dtypes) and propose a plan; --exit-code exits 2 when they differ')
      .argument('<from>', '.sora model, keymap JSON, or checkpoint')
      .argument('<to>', '.sora model, keymap JSON, or checkpoint'),
  )
    .option('--exit-code', 'exit 2 when FROM and TO differ (0 when identical)')
    .option('--json', 'machine-readable output')
    .action(async (from: string, to: string, o: DiffOpts) => {
      const { a, b, d } = await runDiff(from, to, o);
      if (o.json) {
        io.stdout(JSON.stringify({ from: a.label, to: b.label, empty: d.empty, counts: d.counts, removed: d.removed, added: d.added, reshaped: d.reshaped, retyped: d.retyped, builtins: d.builtins, plan: d.plan, reasons: d.reasons, unmatched: d.unmatched, complete: d.complete }, null, 2) + '\n');
      } else {
        let s = `diff FROM ${a.label} (${d.counts.from} tensors) → TO ${b.label} (${d.counts.to} tensors)\n`;
        if (d.empty) s += 'no differences: same keys, shapes and dtypes\n';
        else {
          s += `${d.counts.same} identical, ${d.removed.length} only in FROM, ${d.added.length} only in TO, ${d.reshaped.length} reshaped, ${d.retyped.length} dtype changed\n`;
          const sec = (t: string, items: { key: string; detail: string }[]) => {
            if (!items.length) return;
            s += `\n${t} (${items.length}):\n` + renderCollapsed(collapseKeys(items), '  ', 40);
          };
          sec('only in FROM', d.removed.map((e) => ({ key: e.key, detail: fmtSig(e.sig) })));
          sec('only in TO', d.added.map((e) => ({ key: e.key, detail: fmtSig(e.sig) })));
          sec('reshaped (FROM → TO)', d.reshaped.map((e) => ({ key: e.key, detail: `${fmtSig(e.from)} → ${fmtSig(e.to)}` })));
          sec('dtype changed (FROM → TO)', d.retyped.map((e) => ({ key: e.key, detail: `${e.from.dtype} → ${e.to.dtype}` })));
          const { describeOp } = await import('../../api/migrate.ts');
          s += `\nproposed plan (${d.plan.ops.length} op${d.plan.ops.length === 1 ? '' : 's'}${d.builtins.length ? `; built-ins: ${d.builtins.join(', ')}` : ''}):\n`;
          d.plan.ops.forEach((op, i) => (s += `  ${String(i + 1).padStart(3)}. ${describeOp(op)}\n       ${d.reasons[i]}\n`));
          if (d.unmatched.length) {
            s += `\nnot matched (${d.unmatched.length}):\n`;
            for (const u of d.unmatched) s += `  ${u.side === 'from' ? 'FROM' : 'TO  '} ${u.key} ${fmtSig(u.sig)}\n       why: ${u.reason}\n       plan: ${u.proposal}\n`;
          }
          const flags = [
            ...(o.fromConfig ? ['--from-config', o.fromConfig] : []),
            ...(o.fromSet ?? []).flatMap((v) => ['--from-set', v]),
            ...(o.toConfig ? ['--to-config', o.toConfig] : []),
            ...(o.toSet ?? []).flatMap((v) => ['--to-set', v]),
            ...(o.fromPart && o.fromPart !== 'ema' ? ['--from-part', o.fromPart] : []),
            ...(o.toPart && o.toPart !== 'ema' ? ['--to-part', o.toPart] : []),
          ].join(' ');
          s += `\n${d.complete ? 'the proposed plan turns FROM into TO exactly' : 'the proposed plan is incomplete: review the keys above'}; write it with \`sorac migrate new ${from} ${to}${flags ? ' ' + flags : ''} -o migrations/NAME.ts\`\n`;
        }
        io.stdout(s);
      }
      setExit(o.exitCode && !d.empty ? EXIT.USAGE : EXIT.OK);
    });

  sourceOptions(
    mig
      .command('new')
      .description('write the proposed plan as an editable TypeScript migration (ts-morph)')
      .argument('<from>', '.sora model, keymap JSON, or checkpoint')
      .argument('<to>', '.sora model, keymap JSON, or checkpoint'),
  )
    .requiredOption('-o, --out <file>', 'the .ts file to write, e.g. migrations/stdit2-to-stdit3.ts')
    .option('--name <name>', 'migration name (default: the file name)')
    .option('--force', 'overwrite an existing file')
    .option('--json', 'machine-readable output')
    .action(async (from: string, to: string, o: DiffOpts) => {
      const out = o.out!;
      if (!out.endsWith('.ts')) throw usageError(`-o ${out}: a migration script is a .ts file`, 'e.g. -o migrations/my-migration.ts');
      const outAbs = resolvePath(io.cwd, out);
      const at = (p: string | undefined) => (p === undefined ? undefined : resolvePath(io.cwd, p));
      checkOutputApart(outAbs, [at(from), at(to), at(o.fromConfig), at(o.toConfig)], { code: 'SORA6007', flag: '-o' });
      if (existsSync(outAbs) && !o.force) throw new SoracError('SORA6007', `${out} already exists`, { hint: 'pick a new name, or pass --force to overwrite it' });
      prepareOutputFile(outAbs, { example: 'migration.ts' }); // before the diff: parents made, a directory refused
      const name = o.name ?? basename(out, '.ts');
      const { d } = await runDiff(from, to, o, name);
      const { generateMigration } = await import('../../api/migrate.ts');
      const src = generateMigration(d.plan, { version: VERSION, from, to, reasons: d.reasons, diff: d });
      mkdirSync(dirname(outAbs), { recursive: true });
      await writeFileAtomic(outAbs, new TextEncoder().encode(src));
      if (o.json) io.stdout(JSON.stringify({ ok: true, out, name, ops: d.plan.ops.length, builtins: d.builtins, complete: d.complete, unmatched: d.unmatched.length }, null, 2) + '\n');
      else io.stdout(`wrote ${out}: ${d.plan.ops.length} op(s)${d.builtins.length ? ` (built-ins: ${d.builtins.join(', ')})` : ''}${d.unmatched.length ? `, ${d.unmatched.length} key(s) to review (marked TODO)` : ''}\nnext: edit it, then \`sorac migrate apply ${out} --in WEIGHTS --out OUT\`\n`);
      setExit(EXIT.OK);
    });

  mig
    .command('plan')
    .description('print the plan (JSON) a migration produces: evaluates a script, or a built-in against --in')
    .argument('<migration>', 'built-in name, plan .json, or migration script .ts')
    .option('--in <weights>', 'checkpoint (built-ins derive sizes from its header)')
    .option('--param <name=value>', 'built-in parameter (repeatable)', collect, [] as string[])
    .option('--reverse', 'the inverse plan')
    .option('-o, --out <file>', 'write the plan JSON here instead of stdout')
    .option('--json', 'machine-readable output (the plan JSON; the default)')
    .action(async (spec: string, o: { in?: string; param?: string[]; reverse?: boolean; out?: string; json?: boolean }) => {
      if (o.out) checkOutputApart(resolvePath(io.cwd, o.out), [resolvePath(io.cwd, spec), o.in !== undefined ? resolvePath(io.cwd, o.in) : undefined], { code: 'SORA6007', flag: '-o' });
      if (o.out) prepareOutputFile(resolvePath(io.cwd, o.out), { example: 'plan.json' });
      const m = await resolveMigration(spec, parseParams(o.param), !!o.reverse, io.cwd);
      let plan: Plan;
      if (typeof m.plan === 'function') {
        if (!o.in) throw usageError(`${spec} is a built-in: pass --in WEIGHTS so it can read the sizes from the checkpoint`);
        plan = m.plan((await signatureOf(o.in, {}, io, 'IN')).sig);
      } else plan = m.plan;
      const text = canonicalJson(plan);
      if (o.out) {
        await writeFileAtomic(resolvePath(io.cwd, o.out), new TextEncoder().encode(text));
        if (o.json) io.stdout(JSON.stringify({ ok: true, out: o.out, ops: plan.ops.length }, null, 2) + '\n');
        else io.stdout(`wrote ${o.out}: ${plan.ops.length} op(s)\n`);
      } else io.stdout(text);
      setExit(EXIT.OK);
    });

  mig
    .command('apply')
    .description('apply a migration to a checkpoint, streaming, into a new file (.safetensors) or sharded directory; never modifies the input')
    .argument('<migration>', 'built-in name, plan .json, or migration script .ts')
    .requiredOption('--in <weights>', 'checkpoint to read (file, dir, or hub id resolved offline)')
    .requiredOption('--out <path>', 'new checkpoint: *.safetensors for one file, anything else for a sharded directory')
    .option('--reverse', 'apply the inverse (every op must be invertible)')
    .option('--param <name=value>', 'built-in parameter (repeatable)', collect, [] as string[])
    .option('--force', 'replace an existing --out (atomically, once the new one is complete)')
    .option('--shard-size <size>', 'max shard size for directory output (e.g. 5GB)')
    .option('--source-hash <mode>', 'record the source as: files (sha256 of each file; default) or header (sha256 of the key/shape/dtype/offset table; no extra read pass)', 'files')
    .option('--from <part>', 'for training checkpoint dirs: ema or model', 'ema')
    .option('--json', 'machine-readable output')
    .action(async (spec: string, o: { in: string; out: string; reverse?: boolean; param?: string[]; force?: boolean; shardSize?: string; sourceHash: string; from: string; json?: boolean }) => {
      if (o.sourceHash !== 'files' && o.sourceHash !== 'header') throw usageError(`--source-hash ${o.sourceHash}: expected files or header`);
      const shardSize = o.shardSize ? parseSize(o.shardSize) : undefined;
      if (shardSize !== undefined && o.out.endsWith('.safetensors')) throw usageError('--shard-size applies to a directory --out (without .safetensors)');
      const bar = io.isTTY && !o.json ? progressBar(io) : undefined;
      const pauseAfter = process.env.SORAC_TEST_PAUSE_AFTER_TENSOR;
      // Ctrl-C / SIGTERM mid-apply: remove this process's hidden temp output before exiting (a SIGKILL
      // cannot be caught; it leaves only the hidden temp entry, never anything at --out)
      const cleanup = (sig: NodeJS.Signals) => {
        removeOwnTemps(resolvePath(io.cwd, o.out));
        bar?.done();
        io.stderr(`interrupted (${sig}): nothing was written at ${o.out}\n`);
        if (o.json) io.stdout(errorJson(new SoracError('SORA7009', `interrupted (${sig}): nothing was written at ${o.out}`)));
        process.exit(sig === 'SIGINT' ? 130 : 143);
      };
      process.once('SIGINT', cleanup);
      process.once('SIGTERM', cleanup);
      try {
        const m = await resolveMigration(spec, parseParams(o.param), !!o.reverse, io.cwd);
        const { applyMigration } = await import('../../api/migrate.ts');
        const r = await applyMigration({
          input: o.in,
          out: resolvePath(io.cwd, o.out),
          plan: m.plan,
          ...(o.force ? { force: true } : {}),
          ...(shardSize ? { shardSize } : {}),
          sourceHash: o.sourceHash as 'files',
          open: { cwd: io.cwd, part: o.from === 'model' ? 'model' : 'ema' },
          ...(bar ? { onProgress: (p) => bar.update({ file: p.key, fileIndex: p.index, fileCount: p.count, doneBytes: p.doneBytes, totalBytes: p.totalBytes }) } : {}),
          ...(pauseAfter !== undefined
            ? {
                // test hook (tests/migrate/faults.test.ts): stop after N tensors so a test can SIGKILL us mid-apply
                afterTensor: async (i: number) => {
                  if (i + 1 === Number(pauseAfter)) {
                    io.stderr(`sorac-test-hook: paused after ${i + 1} tensor(s)\n`);
                    await new Promise(() => setInterval(() => {}, 1 << 30));
                  }
                },
              }
            : {}),
        });
        bar?.done();
        for (const w of r.warnings) io.stderr(`warning ${w.code}: ${w.message}\n`);
        if (o.json) io.stdout(JSON.stringify({ ok: true, out: r.out, layout: r.layout, migration: r.plan.name, planHash: r.planHash, tensors: r.tensors, bytes: r.bytes, seconds: r.seconds, source: r.source, ops: r.ops, warnings: r.warnings }, null, 2) + '\n');
        else {
          io.stdout(`applied ${r.plan.name} (${r.plan.ops.length} op${r.plan.ops.length === 1 ? '' : 's'}) to ${o.in}: wrote ${r.tensors} tensors, ${formatBytes(r.bytes)} to ${o.out}${r.layout === 'sharded' ? ' (sharded)' : ''} in ${r.seconds.toFixed(2)} s\n`);
          for (const op of r.ops) io.stdout(`  ${String(op.matched).padStart(5)} × ${op.op}\n`);
          io.stdout(`recorded in __metadata__: sorac.migration=${r.plan.name}, sorac.source.sha256=${r.source.mode === 'header' ? 'header:' : ''}${r.source.hash.length > 80 ? r.source.hash.slice(0, 77) + '…' : r.source.hash}\n`);
        }
        setExit(EXIT.OK);
      } catch (e) {
        bar?.done();
        throw e;
      } finally {
        process.off('SIGINT', cleanup);
        process.off('SIGTERM', cleanup);
      }
    });
};
