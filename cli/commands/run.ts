/**
 * sorac run MODEL.sora --weights W --inputs in.safetensors --out out.safetensors
 *           [--entry NAME] [--device auto|cpu|cuda] [--config f] [--set k=v]
 *
 * Validates everything before any compute (input names/dtypes/shapes, the checkpoint against the
 * model's keymap), runs the entry point with onnxruntime and writes the outputs atomically.
 * Optional inputs absent from the inputs file take the model's default (None) path.
 */
import type { Command } from 'commander';
import { traceEntry } from '../../compiler/compile.ts';
import { hasErrors } from '../../compiler/diagnostics.ts';
import type { CliIO } from '../io.ts';
import { EXIT, UserError } from '../io.ts';
import { addModelOptions, compileFromCli, type ModelOpts, printDiagnostics, summarizeCounts } from '../model-args.ts';
import { weightsErrorToUser } from '../weights.ts';
import { withAliases } from '../../runtime/aliases.ts';
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
    .action(async (file: string, opts: ModelOpts & { weights: string; inputs: string; out: string; entry: string; device: string; from: string; allowLossy?: boolean }) => {
      if (!['auto', 'cpu', 'cuda'].includes(opts.device)) throw new UserError(`--device ${opts.device} is not one of auto, cpu, cuda`, undefined, EXIT.USAGE);
      const m = compileFromCli(file, opts, io);
      if (hasErrors(m.diagnostics) || !m.keymap) {
        printDiagnostics(m.diagnostics, m, io);
        io.stderr(`run failed: ${summarizeCounts(m.diagnostics)}\n`);
        setExit(EXIT.USER);
        return;
      }
      const entry = m.entries.find((e) => e.name === opts.entry);
      if (!entry) throw new UserError(`${m.modelName} has no entry point "${opts.entry}"`, `entries: ${m.entries.map((e) => e.name).join(', ')}`, EXIT.USAGE);
      const { readTensorsFile, writeTensorsFile } = await import('../../runtime/tensors-io.ts');
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
      const { openWeights } = await import('../../runtime/store.ts');
      const { loadReport, renderLoadReport } = await import('../../runtime/load-report.ts');
      let store;
      try {
        store = await openWeights(opts.weights, { part: opts.from === 'model' ? 'model' : 'ema', cwd: io.cwd });
      } catch (e) {
        throw weightsErrorToUser(e);
      }
      try {
        const report = loadReport(m.keymap, withAliases(m.keymap, store));
        if (!report.ok) throw new UserError(`${opts.weights} does not fit ${m.modelName} v${m.version}; nothing was run\n${renderLoadReport(report)}`, 'see the fixes above, or `sorac check MODEL --weights W` for the full report');
        const { lossyConversions, describeLossy } = await import('../../runtime/lossy.ts');
        const lossy = lossyConversions(tr.graph, withAliases(m.keymap, store));
        if (lossy.length && !opts.allowLossy)
          throw new UserError(`loading ${opts.weights} would narrow ${lossy.length} tensor${lossy.length > 1 ? 's' : ''} to the model's dtypes; nothing was run\n${describeLossy(lossy)}`, 'pass --allow-lossy to accept the rounding, or change the dtype policy (params:) to the checkpoint dtype');
        const { graphForDevice } = await import('../../runtime/cpu-lowering.ts');
        const prepared = graphForDevice(tr.graph, opts.device as 'auto');
        if (prepared.note) io.stderr(`${prepared.note}\n`);
        const { runGraph } = await import('../../runtime/run.ts');
        const r = await runGraph(prepared.graph, withAliases(m.keymap, store), inputs, { device: opts.device as 'auto', onInfo: (s) => io.stderr(`${s}\n`) });
        await writeTensorsFile(opts.out, r.outputs, { 'sorac.model': m.modelName!, 'sorac.entry': entry.name, 'sorac.contract': m.keymap.contract, 'sorac.device': r.device });
        if (opts.json) io.stdout(JSON.stringify({ ok: true, out: opts.out, device: r.device, outputs: [...r.outputs].map(([k, v]) => ({ name: k, dtype: v.dtype, shape: v.shape })), createMs: Math.round(r.createMs), runMs: Math.round(r.runMs) }, null, 2) + '\n');
        else io.stdout(`ran ${m.modelName}.${entry.name} on ${r.device} in ${r.runMs.toFixed(0)} ms (session ${r.createMs.toFixed(0)} ms); wrote ${[...r.outputs].map(([k, v]) => `${k} ${v.dtype}[${v.shape.join(',')}]`).join(', ')} to ${opts.out}\n`);
        setExit(EXIT.OK);
      } catch (e) {
        throw weightsErrorToUser(e);
      } finally {
        await store.close();
      }
    });
};
