/**
 * sorac run MODEL.sora --weights W --inputs in.safetensors --out out.safetensors
 *           [--entry NAME] [--device auto|cpu|cuda] [--config f] [--set k=v] [--micro-batch N [--micro-axis NAME]]
 *
 * Validates everything before any compute (input names/dtypes/shapes, the checkpoint against the
 * model's keymap), runs the entry point with onnxruntime and writes the outputs atomically.
 * Optional inputs absent from the inputs file take the model's default (None) path.
 * --micro-batch N runs the entry N elements at a time along an axis it declares with micro_batch(), in one
 * session, writing each chunk's outputs straight into --out (docs/adr/005-micro-batching.md).
 */
import type { Command } from 'commander';
import { hasErrors } from '../../core/diagnostics.ts';
import { SoracError } from '../../core/errors.ts';
import { checkOutputApart } from '../../core/paths.ts';
import { resolve as resolvePath } from 'node:path';
import type { RegisterCommand } from '../command.ts';
import type { CliIO } from '../io.ts';
import { EXIT, usageError } from '../io.ts';
import { addModelOptions, compileForWeights, type ModelOpts, printDiagnostics, summarizeCounts } from '../model-args.ts';

export const registerRun: RegisterCommand = (program: Command, io: CliIO, setExit) => {
  addModelOptions(program.command('run').argument('<model>', '.sora model file'))
    .description('run an entry point of a model on real weights with onnxruntime')
    .requiredOption('-w, --weights <weights>', 'checkpoint (file, dir, or hub id resolved offline)')
    .requiredOption('-i, --inputs <file>', 'safetensors file of named input tensors')
    .requiredOption('-o, --out <file>', 'safetensors file to write the outputs to (atomically)')
    .option('-e, --entry <name>', 'entry point', 'forward')
    .option('-d, --device <device>', 'auto | cpu | cuda', 'auto')
    .option('--from <part>', 'for training checkpoint dirs: ema or model', 'ema')
    .option('--dtype <rule=value>', 'override a dtype policy rule, e.g. --dtype compute=bf16 (repeatable)', (v: string, p: string[] = []) => [...p, v], [] as string[])
    .option('--allow-lossy', 'allow narrowing checkpoint dtypes at load (e.g. f32 weights into a bf16 model)')
    .option('--micro-batch <n>', 'run in chunks of N elements along an axis the entry declares with micro_batch() (bounded memory; outputs streamed to --out)')
    .option('--micro-axis <name>', 'the axis for --micro-batch (default: the first the entry declares)')
    .action(async (file: string, opts: ModelOpts & { weights: string; inputs: string; out: string; entry: string; device: string; from: string; allowLossy?: boolean; microBatch?: string; microAxis?: string }) => {
      // loaded when the command runs, so other commands do not load it (a separate chunk of the bundle)
      const { ModelError, runModel } = await import('../../api/run.ts');
      if (!['auto', 'cpu', 'cuda'].includes(opts.device)) throw usageError(`--device ${opts.device} is not one of auto, cpu, cuda`);
      const microSize = opts.microBatch === undefined ? undefined : Number(opts.microBatch);
      if (microSize !== undefined && !(Number.isSafeInteger(microSize) && microSize > 0)) throw usageError(`--micro-batch ${opts.microBatch} is not a positive integer`);
      if (opts.microAxis !== undefined && microSize === undefined) throw usageError('--micro-axis needs --micro-batch N');
      const at = (p: string | undefined) => (p === undefined ? undefined : resolvePath(io.cwd, p));
      checkOutputApart(at(opts.out)!, [at(file), at(opts.config), at(opts.weights), at(opts.inputs)], { flag: '-o' });
      const m = await compileForWeights(file, opts, io, opts.weights, opts.from === 'model' ? 'model' : 'ema');
      if (hasErrors(m.diagnostics) || !m.keymap) {
        if (opts.json) io.stdout(JSON.stringify({ ok: false, diagnostics: m.diagnostics }, null, 2) + '\n');
        else printDiagnostics(m.diagnostics, m, io);
        io.stderr(`run failed: ${summarizeCounts(m.diagnostics)}\n`);
        setExit(EXIT.USER);
        return;
      }
      if (!m.entries.some((e) => e.name === opts.entry)) throw usageError(`${m.modelName} has no entry point "${opts.entry}"`, `entries: ${m.entries.map((e) => e.name).join(', ')}`);
      let r;
      try {
        r = await runModel(m, {
          weights: opts.weights,
          inputs: opts.inputs,
          entry: opts.entry,
          device: opts.device as 'auto' | 'cpu' | 'cuda',
          part: opts.from === 'model' ? 'model' : 'ema',
          cwd: io.cwd,
          ...(opts.allowLossy ? { allowLossy: true } : {}),
          ...(microSize !== undefined ? { microBatch: { size: microSize, ...(opts.microAxis !== undefined ? { axis: opts.microAxis } : {}) } } : {}),
          out: { path: opts.out },
          onInfo: (x) => io.stderr(`${x}\n`),
        });
      } catch (e) {
        // micro-batch problems found before compute (the plan) are usage errors of --micro-batch/--micro-axis
        if (e instanceof ModelError && e.code === 'SORA5509') throw usageError(`--micro-batch: ${e.message}`, e.hint);
        if (e instanceof SoracError && e.code === 'SORA5509') throw new SoracError(e.code, `--micro-batch: ${e.message}`, { ...(e.hint ? { hint: e.hint } : {}) });
        throw e;
      }
      const mb = r.microBatch;
      if (opts.json) io.stdout(JSON.stringify({ ok: true, out: opts.out, device: r.device, outputs: r.shapes, createMs: Math.round(r.createMs), runMs: Math.round(r.runMs), ...(mb ? { microBatch: mb } : {}) }, null, 2) + '\n');
      else io.stdout(`ran ${m.modelName}.${opts.entry} on ${r.device} in ${r.runMs.toFixed(0)} ms (session ${r.createMs.toFixed(0)} ms${mb ? `; ${mb.chunks} chunk${mb.chunks === 1 ? '' : 's'} of ${mb.size} along ${mb.axis}` : ''}); wrote ${r.shapes.map((o) => `${o.name} ${o.dtype}[${o.shape.join(',')}]`).join(', ')} to ${opts.out}\n`);
      setExit(EXIT.OK);
    });
};
