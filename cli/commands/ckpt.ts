/**
 * `sorac ckpt …`: Open-Sora training checkpoint directories (`<exp>/epochE-global_stepS/`).
 *
 *   ls EXP_DIR        every checkpoint: epoch, step, global step, parts, size, complete or why not; latest marked
 *   latest EXP_DIR    the latest complete checkpoint's path (for --load); exit 1 when none is complete
 *   verify DIR        structure, sha256 and readability of every part; compared with sorac-manifest.json if present
 *   manifest DIR      write DIR/sorac-manifest.json (sha256 + size of every file), atomically
 *   export DIR -o OUT EMA/model weights → inference safetensors (file, or HF shards with --shard-size)
 *   prune EXP_DIR --keep N   delete all but the newest N complete checkpoints
 *
 * Every subcommand takes --json. Exit codes: 0 ok; 1 problem found / nothing complete / refused;
 * 2 usage.
 */
import { resolve as resolvePath } from 'node:path';
import { type Command } from 'commander';
import { hasErrors } from '../../core/diagnostics.ts';
import type { CheckpointInfo, ExportDtype } from '../../api/training.ts';
import { formatBytes } from '../../api/weights.ts';
import { SoracError } from '../../core/errors.ts';
import type { RegisterCommand } from '../command.ts';
import { EXIT, usageError, type CliIO } from '../io.ts';
import { compileFromCli, printDiagnostics, summarizeCounts } from '../model-args.ts';
import { progressBar } from '../progress.ts';
import { errorJson, renderError } from '../render.ts';

const PART_ORDER = ['model', 'lora', 'ema', 'optimizer', 'lr_scheduler', 'sampler', 'master', 'running_states'] as const;
const SHORT: Record<string, string> = { model: 'model', lora: 'lora', ema: 'ema', optimizer: 'optim', lr_scheduler: 'sched', sampler: 'sampler', master: 'master', running_states: 'states' };

function ckptJSON(c: CheckpointInfo, latest?: CheckpointInfo) {
  return {
    name: c.name,
    path: c.dir,
    epoch: c.epoch ?? c.nameEpoch,
    step: c.step ?? null,
    globalStep: c.globalStep ?? null,
    actualUpdateStep: c.actualUpdateStep ?? null,
    batchSize: c.batchSize ?? null,
    layout: c.layout,
    parts: Object.fromEntries(PART_ORDER.filter((p) => c.parts[p]).map((p) => [p, { path: c.parts[p]!.path, ok: c.parts[p]!.ok, bytes: c.parts[p]!.bytes, files: c.parts[p]!.files }])),
    bytes: c.bytes,
    modified: c.mtimeMs ? new Date(c.mtimeMs).toISOString() : null,
    complete: c.complete,
    latest: latest?.dir === c.dir,
    problems: c.problems,
    warnings: c.warnings,
  };
}

/** Print a SoracError (JSON or text) and set exit 1; rethrow anything else. */
function fail(io: CliIO, json: boolean | undefined, setExit: (n: number) => void, e: unknown) {
  if (!(e instanceof SoracError)) throw e;
  io[json ? 'stdout' : 'stderr'](json ? errorJson(e) : renderError(e));
  setExit(EXIT.USER);
}

/** Ctrl-C / SIGTERM during a long write: abort it cleanly (temp output removed) instead of dying mid-write. */
function interruptible() {
  const ac = new AbortController();
  const onSignal = () => ac.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return {
    signal: ac.signal,
    dispose() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

const EXIT_INTERRUPTED = 130;

function statusText(c: CheckpointInfo, latest?: CheckpointInfo): string {
  if (c.complete) return latest?.dir === c.dir ? 'complete (latest)' : 'complete';
  return `INCOMPLETE: ${c.problems[0] ?? '?'}${c.problems.length > 1 ? ` (+${c.problems.length - 1} more)` : ''}`;
}

export const registerCkpt: RegisterCommand = (program: Command, io: CliIO, setExit) => {
  const ckpt = program.command('ckpt').description('Open-Sora training checkpoint dirs: list, pick the latest complete, verify, manifest, export for inference, prune');

  ckpt
    .command('ls')
    .description('list every epochN-global_stepM/ checkpoint of an experiment dir: steps, parts, size, complete or not; the latest complete one is marked *')
    .argument('<exp_dir>', 'experiment dir (e.g. outputs/000-STDiT3-XL-2), or one checkpoint dir')
    .option('--json', 'machine-readable output')
    .action(async (dir: string, o: { json?: boolean }) => {
      try {
        const l = await (await training()).listCheckpoints(resolveIn(io, dir));
        if (o.json) {
          io.stdout(JSON.stringify({ ok: true, dir: l.dir, latest: l.latest?.dir ?? null, checkpoints: l.checkpoints.map((c) => ckptJSON(c, l.latest)) }, null, 2) + '\n');
          setExit(EXIT.OK);
          return;
        }
        const n = l.checkpoints.length;
        io.stdout(`${l.dir}: ${n} checkpoint${n === 1 ? '' : 's'}, ${l.checkpoints.filter((c) => c.complete).length} complete; latest complete: ${l.latest?.name ?? 'none'}\n`);
        if (!n) {
          setExit(EXIT.OK);
          return;
        }
        const rows = l.checkpoints.map((c) => [
          l.latest?.dir === c.dir ? '*' : ' ',
          c.name,
          String(c.epoch ?? c.nameEpoch),
          c.step === undefined ? '-' : String(c.step),
          c.globalStep === undefined ? '-' : String(c.globalStep),
          PART_ORDER.filter((p) => p !== 'running_states' && c.parts[p]).map((p) => (c.parts[p]!.ok ? SHORT[p] : `${SHORT[p]}!`)).join(',') || '-',
          formatBytes(c.bytes),
          statusText(c, l.latest),
        ]);
        const head = [' ', 'checkpoint', 'epoch', 'step', 'global', 'parts', 'size', 'status'];
        const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
        const right = new Set([2, 3, 4, 6]);
        const fmt = (r: string[]) => r.map((x, i) => (i === r.length - 1 ? x : right.has(i) ? x.padStart(w[i]!) : x.padEnd(w[i]!))).join('  ').trimEnd() + '\n';
        io.stdout(fmt(head));
        for (const r of rows) io.stdout(fmt(r));
        const warn = l.checkpoints.filter((c) => !c.complete && c.problems.length > 1);
        for (const c of warn) io.stdout(`\n${c.name}:\n${c.problems.map((p) => `  - ${p}`).join('\n')}\n`);
        setExit(EXIT.OK);
      } catch (e) {
        fail(io, o.json, setExit, e);
      }
    });

  ckpt
    .command('latest')
    .description('print the path of the latest complete checkpoint (for a training script --load); exit 1 if none is complete')
    .argument('<exp_dir>', 'experiment dir')
    .option('--json', 'machine-readable output')
    .action(async (dir: string, o: { json?: boolean }) => {
      try {
        const l = await (await training()).listCheckpoints(resolveIn(io, dir));
        if (!l.latest) {
          const why = l.checkpoints.length
            ? `none of its ${l.checkpoints.length} checkpoint(s) is complete:\n${l.checkpoints.map((c) => `    - ${c.name}: ${c.problems[0]}`).join('\n')}`
            : 'it holds no epochN-global_stepM/ checkpoint dirs';
          throw new SoracError('SORA5102', `no complete checkpoint in ${l.dir}: ${why}`, { hint: 'start training from scratch, or restore a checkpoint from a backup (`sorac ckpt verify` checks a copy)', looked: [], path: l.dir });
        }
        if (o.json) io.stdout(JSON.stringify({ ok: true, path: l.latest.dir, checkpoint: ckptJSON(l.latest, l.latest) }, null, 2) + '\n');
        else io.stdout(l.latest.dir + '\n');
        setExit(EXIT.OK);
      } catch (e) {
        fail(io, o.json, setExit, e);
      }
    });

  ckpt
    .command('verify')
    .description('check structure, sha256 and readability of every part of one checkpoint (torch files through the restricted unpickler); compare with sorac-manifest.json when present')
    .argument('<dir>', 'one epochN-global_stepM/ checkpoint dir')
    .option('--json', 'machine-readable output')
    .action(async (dir: string, o: { json?: boolean }) => {
      const bar = io.isTTY && !o.json ? progressBar(io) : undefined;
      try {
        const r = await (await training()).verifyCheckpoint(resolveIn(io, dir), { onProgress: bar ? (p) => bar.update(p) : undefined });
        bar?.done();
        if (o.json) {
          const { checkpoint, ...rest } = r;
          io.stdout(JSON.stringify({ ...rest, checkpoint: ckptJSON(checkpoint) }, null, 2) + '\n');
        } else {
          for (const f of r.files) {
            io.stdout(`${f.status.padEnd(13)} ${(f.sha256 ?? '-').padEnd(64)}  ${formatBytes(f.size).padStart(8)}  ${f.path}\n`);
            if (f.detail && f.status !== 'ok') io.stdout(`${''.padEnd(13)} ${f.detail}\n`);
          }
          const unread = r.readable.filter((x) => !x.ok);
          io.stdout(`\nreadable: ${r.readable.length - unread.length}/${r.readable.length} torch file(s) and index(es) opened through the restricted readers\n`);
          io.stdout(r.manifest.present ? `manifest: ${r.manifest.files} file(s); ${r.manifest.missing} missing, ${r.manifest.mismatched} changed, ${r.manifest.extra} not listed\n` : `manifest: none (write one with \`sorac ckpt manifest ${dir}\`)\n`);
          if (r.temps.length) io.stdout(`leftovers of interrupted writes (safe to delete): ${r.temps.join(', ')}\n`);
          const rate = r.bytes / Math.max(1e-6, r.seconds);
          io.stdout(`${r.files.length} file(s), ${formatBytes(r.bytes)} in ${r.seconds.toFixed(2)} s (${formatBytes(rate)}/s): ${r.ok ? 'ok' : `${r.problems.length} problem(s)`}\n`);
          for (const p of r.problems) io.stdout(`  - ${p}\n`);
        }
        setExit(r.ok ? EXIT.OK : EXIT.USER);
      } catch (e) {
        bar?.done();
        fail(io, o.json, setExit, e);
      }
    });

  ckpt
    .command('manifest')
    .description(`hash every file of a complete checkpoint and write DIR/sorac-manifest.json atomically, so copies can be checked with \`sorac ckpt verify\``)
    .argument('<dir>', 'one epochN-global_stepM/ checkpoint dir')
    .option('--json', 'machine-readable output')
    .action(async (dir: string, o: { json?: boolean }) => {
      const bar = io.isTTY && !o.json ? progressBar(io) : undefined;
      const stop = interruptible();
      try {
        const r = await (await training()).writeManifest(resolveIn(io, dir), { onProgress: bar ? (p) => bar.update(p) : undefined, signal: stop.signal });
        bar?.done();
        const n = Object.keys(r.manifest.files).length;
        if (o.json) io.stdout(JSON.stringify({ ok: true, path: r.path, files: n, bytes: r.bytes }, null, 2) + '\n');
        else io.stdout(`wrote ${r.path}: ${n} file(s), ${formatBytes(r.bytes)} hashed (sha256)\n`);
        setExit(EXIT.OK);
      } catch (e) {
        bar?.done();
        if (e instanceof (await training()).InterruptedError) {
          io.stderr('interrupted: no manifest was written\n');
          setExit(EXIT_INTERRUPTED);
          return;
        }
        fail(io, o.json, setExit, e);
      } finally {
        stop.dispose();
      }
    });

  ckpt
    .command('export')
    .description('write the EMA (default) or model weights of a checkpoint as inference safetensors: streamed, atomic, validated against a .sora model with --model')
    .argument('<dir>', 'one epochN-global_stepM/ checkpoint dir')
    .requiredOption('-o, --out <path>', 'output .safetensors file, or a directory with --shard-size')
    .option('--from <part>', 'ema or model', 'ema')
    .option('--dtype <dtype>', 'cast float tensors to bf16, f16 or f32 (default: as stored)')
    .option('--shard-size <size>', 'write HF shards (model-0000K-of-0000N.safetensors + model.safetensors.index.json) of at most this size, e.g. 5GB, 500MB, 2GiB')
    .option('--model <file>', '.sora model to validate against first (strict load report; nothing is written if it fails)')
    .option('-c, --config <file>', 'with --model: JSON config values')
    .option('-s, --set <key=value>', 'with --model: override one config value (repeatable)', (v: string, p: string[] = []) => [...p, v], [] as string[])
    .option('--model-name <name>', 'with --model: which model of the file, when it declares several')
    .option('--allow-missing <glob>', 'with --model: keys that may be missing (repeatable)', (v: string, p: string[] = []) => [...p, v], [] as string[])
    .option('--force', 'replace an existing output (atomically)')
    .option('--json', 'machine-readable output')
    .action(async (dir: string, o: { out: string; from: string; dtype?: string; shardSize?: string; model?: string; config?: string; set?: string[]; modelName?: string; allowMissing?: string[]; force?: boolean; json?: boolean }) => {
      if (o.from !== 'ema' && o.from !== 'model') throw usageError(`--from ${o.from}: expected ema or model`);
      if (o.dtype !== undefined && !['bf16', 'f16', 'f32'].includes(o.dtype)) throw usageError(`--dtype ${o.dtype}: expected bf16, f16 or f32`);
      let shardSize: number | undefined;
      if (o.shardSize !== undefined) {
        shardSize = (await training()).parseSize(o.shardSize);
        if (!shardSize) throw usageError(`--shard-size ${o.shardSize}: expected a size such as 5GB, 500MB or 2GiB`);
      }
      if (!o.model && (o.config || o.set?.length || o.modelName)) throw usageError('--config/--set/--model-name need --model MODEL.sora');
      let keymap;
      if (o.model) {
        const m = compileFromCli(o.model, { config: o.config, set: o.set, model: o.modelName }, io);
        if (hasErrors(m.diagnostics) || !m.keymap) {
          if (!o.json) printDiagnostics(m.diagnostics, m, io);
          throw new SoracError('SORA7010', `${o.model} does not compile (${summarizeCounts(m.diagnostics)}); nothing was exported`, { data: { diagnostics: m.diagnostics } });
        }
        if (!o.json) printDiagnostics(m.diagnostics, m, io); // warnings (e.g. unknown config keys)
        keymap = m.keymap;
      }
      const bar = io.isTTY && !o.json ? progressBar(io) : undefined;
      const stop = interruptible();
      try {
        const r = await (await training()).exportCheckpoint(resolveIn(io, dir), {
          signal: stop.signal,
          from: o.from,
          dtype: o.dtype as ExportDtype | undefined,
          out: resolveIn(io, o.out),
          shardSize,
          keymap,
          allowMissing: o.allowMissing,
          overwrite: o.force,
          onProgress: bar ? (p) => bar.update(p) : undefined,
        });
        bar?.done();
        const rate = r.bytes / Math.max(1e-6, r.seconds);
        if (o.json) io.stdout(JSON.stringify({ ok: true, out: r.out, files: r.files, tensors: r.tensors, bytes: r.bytes, seconds: r.seconds, metadata: r.metadata, validated: !!r.report, notes: r.notes }, null, 2) + '\n');
        else {
          io.stdout(`exported ${o.from} weights of ${r.checkpoint.name} (epoch ${r.metadata.epoch}, step ${r.metadata.step}, global step ${r.metadata.global_step}): ${r.tensors} tensors, ${formatBytes(r.bytes)}${o.dtype ? ` as ${o.dtype}` : ''} in ${r.seconds.toFixed(2)} s (${formatBytes(rate)}/s)\n`);
          for (const f of r.files) io.stdout(`  ${f}\n`);
          for (const n of r.notes) if (/is not a complete checkpoint/.test(n)) io.stderr(`note: ${n}\n`);
          if (r.report) io.stdout(`validated against ${o.model}: load report ok (${r.report.dtypeMismatch.length} dtype difference(s) cast at load)\n`);
        }
        setExit(EXIT.OK);
      } catch (e) {
        bar?.done();
        if (e instanceof (await training()).InterruptedError) {
          io.stderr(`interrupted: nothing was written at ${resolveIn(io, o.out)}\n`);
          if (o.json) io.stdout(errorJson(new SoracError('SORA7009', `interrupted: nothing was written at ${resolveIn(io, o.out)}`)));
          setExit(EXIT_INTERRUPTED);
          return;
        }
        fail(io, o.json, setExit, e);
      } finally {
        stop.dispose();
      }
    });

  ckpt
    .command('prune')
    .description('delete all but the newest N complete checkpoints (never the only complete one, never an incomplete one newer than the latest complete)')
    .argument('<exp_dir>', 'experiment dir')
    .requiredOption('--keep <n>', 'how many complete checkpoints to keep (>= 1)')
    .option('--dry-run', 'print what would be deleted, delete nothing')
    .option('--keep-incomplete', 'also keep incomplete checkpoints older than the latest complete one')
    .option('--json', 'machine-readable output')
    .action(async (dir: string, o: { keep: string; dryRun?: boolean; keepIncomplete?: boolean; json?: boolean }) => {
      const keep = Number(o.keep);
      if (!/^\d+$/.test(o.keep) || keep < 1) throw usageError(`--keep ${o.keep}: expected an integer >= 1`, 'prune never deletes the only complete checkpoint');
      try {
        const verb = o.dryRun ? 'would delete' : 'deleting';
        const r = await (await training()).pruneCheckpoints(resolveIn(io, dir), {
          keep,
          dryRun: o.dryRun,
          keepIncomplete: o.keepIncomplete,
          onDelete: o.json ? undefined : (it) => io.stdout(`${verb} ${it.checkpoint.dir} (${formatBytes(it.checkpoint.bytes)}; ${it.reason})\n`),
        });
        if (o.json) {
          io.stdout(
            JSON.stringify({ ok: true, dryRun: !!o.dryRun, deleted: r.deleted, freedBytes: r.freedBytes, plan: r.plan.map((p) => ({ name: p.checkpoint.name, path: p.checkpoint.dir, action: p.action, reason: p.reason })) }, null, 2) + '\n',
          );
        } else {
          for (const p of r.plan.filter((x) => x.action === 'keep')) io.stdout(`keeping  ${p.checkpoint.dir} (${p.reason})\n`);
          io.stdout(`${o.dryRun ? 'dry run: would delete' : 'deleted'} ${r.deleted.length} checkpoint(s), ${formatBytes(r.freedBytes)}\n`);
        }
        setExit(EXIT.OK);
      } catch (e) {
        fail(io, o.json, setExit, e);
      }
    });
};

/** api/training.ts, loaded when a ckpt command runs (a separate chunk of the bundle), so other commands do not load it. */
const training = () => import('../../api/training.ts');

function resolveIn(io: CliIO, p: string): string {
  return resolvePath(io.cwd, p);
}
