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
import { traceEntry } from '../../compiler/compile.ts';
import { hasErrors } from '../../core/diagnostics.ts';
import type { CliIO } from '../io.ts';
import { EXIT, UserError } from '../io.ts';
import { addModelOptions, compileFromCli, type ModelOpts, printDiagnostics, summarizeCounts } from '../model-args.ts';
import { weightsErrorToUser } from '../weights.ts';
import { withAliases } from '../../runtime/weights/aliases.ts';
import type { RegisterCommand } from './index.ts';

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
      if (!['auto', 'cpu', 'cuda'].includes(opts.device)) throw new UserError(`--device ${opts.device} is not one of auto, cpu, cuda`, undefined, EXIT.USAGE);
      const microSize = opts.microBatch === undefined ? undefined : Number(opts.microBatch);
      if (microSize !== undefined && !(Number.isSafeInteger(microSize) && microSize > 0)) throw new UserError(`--micro-batch ${opts.microBatch} is not a positive integer`, undefined, EXIT.USAGE);
      if (opts.microAxis !== undefined && microSize === undefined) throw new UserError('--micro-axis needs --micro-batch N', undefined, EXIT.USAGE);
      const m = compileFromCli(file, opts, io);
      if (hasErrors(m.diagnostics) || !m.keymap) {
        printDiagnostics(m.diagnostics, m, io);
        io.stderr(`run failed: ${summarizeCounts(m.diagnostics)}\n`);
        setExit(EXIT.USER);
        return;
      }
      const entry = m.entries.find((e) => e.name === opts.entry);
      if (!entry) throw new UserError(`${m.modelName} has no entry point "${opts.entry}"`, `entries: ${m.entries.map((e) => e.name).join(', ')}`, EXIT.USAGE);
      const { readTensorsFile, writeTensorsFile } = await import('../../runtime/formats/tensors-io.ts');
      let inputs;
      try {
        inputs = (await readTensorsFile(opts.inputs)).tensors;
      } catch (e) {
        throw weightsErrorToUser(e);
      }
      const known = new Set(entry.inputs.map((i) => i.name));
      const unknown = [...inputs.keys()].filter((k) => !known.has(k));
      if (unknown.length)
        throw new UserError(`${opts.inputs} has tensors that are not inputs of ${m.modelName}.${entry.name}: ${unknown.join(', ')}`, `inputs are: ${entry.inputs.map((i) => `${i.name}${i.optional ? '?' : ''}`).join(', ')}`);
      const missing = entry.inputs.filter((i) => !i.optional && !inputs.has(i.name)).map((i) => i.name);
      if (missing.length) throw new UserError(`${opts.inputs} lacks required input${missing.length > 1 ? 's' : ''} ${missing.join(', ')} of ${m.modelName}.${entry.name}`, `inputs are: ${entry.inputs.map((i) => `${i.name}${i.optional ? '?' : ''}`).join(', ')}`);
      const absent = new Set(entry.inputs.filter((i) => i.optional && !inputs.has(i.name)).map((i) => i.name));
      const tr = traceEntry(m, entry.name, { absent });
      if (!tr.graph) {
        printDiagnostics(tr.diagnostics, m, io);
        setExit(EXIT.USER);
        return;
      }
      const mb = await import('../../runtime/execution/micro-batch.ts');
      let plan;
      try {
        plan = microSize === undefined ? undefined : mb.planMicroBatch(tr.graph, opts.microAxis !== undefined ? { axis: opts.microAxis } : {});
        if (plan && microSize! % plan.step !== 0)
          throw new mb.MicroBatchError(`${plan.graph} splits ${plan.axis} in whole groups of ${plan.step}: ${microSize} is not a multiple of ${plan.step}`, `use a multiple of ${plan.step}`);
      } catch (e) {
        if (e instanceof mb.MicroBatchError) throw new UserError(`--micro-batch: ${e.message}`, e.hint, EXIT.USAGE);
        throw e;
      }
      const { openWeights } = await import('../../runtime/weights/store.ts');
      const { loadReport, renderLoadReport } = await import('../../runtime/weights/load-report.ts');
      let store;
      try {
        store = await openWeights(opts.weights, { part: opts.from === 'model' ? 'model' : 'ema', cwd: io.cwd });
      } catch (e) {
        throw weightsErrorToUser(e);
      }
      try {
        const report = loadReport(m.keymap, withAliases(m.keymap, store), { weights: opts.weights });
        if (!report.ok) throw new UserError(`${opts.weights} does not fit ${m.modelName} v${m.version}; nothing was run\n${renderLoadReport(report)}`, 'see the fixes above, or `sorac check MODEL --weights W` for the full report');
        const { lossyConversions, describeLossy } = await import('../../runtime/weights/lossy.ts');
        const lossy = lossyConversions(tr.graph, withAliases(m.keymap, store));
        if (lossy.length && !opts.allowLossy)
          throw new UserError(`loading ${opts.weights} would narrow ${lossy.length} tensor${lossy.length > 1 ? 's' : ''} to the model's dtypes; nothing was run\n${describeLossy(lossy)}`, 'pass --allow-lossy to accept the rounding, or change the dtype policy (params:) to the checkpoint dtype');
        const { graphForDevice } = await import('../../compiler/passes/cpu-bf16.ts');
        const prepared = graphForDevice(tr.graph, opts.device as 'auto');
        if (prepared.note) io.stderr(`${prepared.note}\n`);
        const meta = (device: string) => ({ 'sorac.model': m.modelName!, 'sorac.entry': entry.name, 'sorac.contract': m.keymap!.contract, 'sorac.device': device });
        let r: { outputs: Map<string, { dtype: string; shape: readonly number[] }>; device: string; createMs: number; runMs: number; chunks?: number };
        if (plan) {
          // one session; every chunk's outputs go straight into --out at their final offsets
          const { createSession } = await import('../../runtime/execution/session.ts');
          const s = await createSession(prepared.graph, withAliases(m.keymap, store), { device: opts.device as 'auto', onInfo: (x) => io.stderr(`${x}\n`) });
          try {
            const mr = await mb.runMicroBatched(s, plan, inputs, { size: microSize!, out: { path: opts.out, metadata: { ...meta(s.device), 'sorac.micro_batch': `${plan.axis}:${microSize}` } } }).catch((e: unknown) => {
              throw e instanceof mb.MicroBatchError ? new UserError(`--micro-batch: ${e.message}`, e.hint) : e;
            });
            r = { outputs: new Map(mr.shapes), device: s.device, createMs: s.createMs, runMs: mr.runMs, chunks: mr.chunks };
          } finally {
            await s.release();
          }
        } else {
          const { runGraph } = await import('../../runtime/execution/run.ts');
          const rr = await runGraph(prepared.graph, withAliases(m.keymap, store), inputs, { device: opts.device as 'auto', onInfo: (s) => io.stderr(`${s}\n`) });
          await writeTensorsFile(opts.out, rr.outputs, meta(rr.device));
          r = rr;
        }
        if (opts.json) io.stdout(JSON.stringify({ ok: true, out: opts.out, device: r.device, outputs: [...r.outputs].map(([k, v]) => ({ name: k, dtype: v.dtype, shape: v.shape })), createMs: Math.round(r.createMs), runMs: Math.round(r.runMs), ...(plan ? { microBatch: { axis: plan.axis, size: microSize, chunks: r.chunks } } : {}) }, null, 2) + '\n');
        else io.stdout(`ran ${m.modelName}.${entry.name} on ${r.device} in ${r.runMs.toFixed(0)} ms (session ${r.createMs.toFixed(0)} ms${plan ? `; ${r.chunks} chunk${r.chunks === 1 ? '' : 's'} of ${microSize} along ${plan.axis}` : ''}); wrote ${[...r.outputs].map(([k, v]) => `${k} ${v.dtype}[${v.shape.join(',')}]`).join(', ')} to ${opts.out}\n`);
        setExit(EXIT.OK);
      } catch (e) {
        throw weightsErrorToUser(e);
      } finally {
        await store.close();
      }
    });
};
