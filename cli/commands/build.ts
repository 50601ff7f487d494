/**
 * sorac build MODEL.sora -o OUT/ [--config f] [--set k=v] [--opset N] [--weights W] [--no-onnx]
 *
 * Writes OUT/<model>.keymap.json (canonical JSON, contract hash) and one ONNX graph per entry
 * point (OUT/<model>.onnx for `forward`, OUT/<model>.<entry>.onnx otherwise) whose weights are
 * external data in OUT/<stem>.weights.safetensors (written when --weights is given).
 * All files are written atomically; nothing is written when the model has errors.
 */
import { resolve as resolvePath } from 'node:path';
import type { Command } from 'commander';
import { buildModel } from '../../api/build.ts';
import type { CompiledModel } from '../../api/model.ts';
import type { IrGraph } from '../../core/ir.ts';
import { parameterCount } from '../../core/keymap.ts';
import type { RegisterCommand } from '../command.ts';
import type { CliIO } from '../io.ts';
import { EXIT, usageError } from '../io.ts';
import { addModelOptions, compileForWeights, type ModelOpts, printDiagnostics, summarizeCounts } from '../model-args.ts';

export const registerBuild: RegisterCommand = (program: Command, io: CliIO, setExit) => {
  addModelOptions(program.command('build').argument('<model>', '.sora model file'))
    .description('compile a model to OUT/<model>.keymap.json and one ONNX graph per entry point')
    .requiredOption('-o, --out <dir>', 'output directory')
    .option('--opset <n>', 'ONNX opset (17 default; newer ops are decomposed)', '17')
    .option('-w, --weights <weights>', 'write the weights file the graphs reference (external data), converted from this checkpoint; without it the weights are graph inputs')
    .option('--no-onnx', 'write only the keymap')
    .option('--dtype <rule=value>', 'override a dtype policy rule, e.g. --dtype compute=bf16 (repeatable)', (v: string, p: string[] = []) => [...p, v], [] as string[])
    .option('--explain-dtypes', 'print every cast the dtype policy placed, with where and why')
    .option('--target <device>', 'lower the graphs for a runtime: cuda (ops without a bf16/f16 kernel on onnxruntime 1.29\'s CUDA provider run in f32; --explain-dtypes lists them) or ort (the graph sorac\'s CPU sessions run: shared subexpressions merged, fewer nodes, same numbers)')
    .action(async (file: string, opts: ModelOpts & { out: string; opset: string; weights?: string; onnx: boolean; explainDtypes?: boolean; target?: string }) => {
      const opset = Number(opts.opset);
      if (!Number.isInteger(opset) || opset < 17 || opset > 26) throw usageError(`--opset ${opts.opset} is not supported`, 'use an integer from 17 to 26 (17 passes every ONNX checker; onnxruntime accepts up to 26)');
      if (opts.target !== undefined && opts.target !== 'cuda' && opts.target !== 'ort') throw usageError(`--target ${opts.target} is not supported`, 'the targets are cuda and ort (without --target the graphs are plain standard-opset ONNX as traced; sessions sorac creates lower for their device themselves)');
      const t0 = performance.now();
      const m = await compileForWeights(file, opts, io, opts.weights);
      const r = await buildModel(m, { out: opts.out, inputs: [resolvePath(io.cwd, file), opts.config !== undefined ? resolvePath(io.cwd, opts.config) : undefined], opset, onnx: opts.onnx, cwd: io.cwd, ...(opts.weights ? { weights: opts.weights } : {}), ...(opts.target === 'cuda' || opts.target === 'ort' ? { target: opts.target } : {}) });
      const ds = r.diagnostics;
      const graphs = r.graphs;
      const written = r.files;
      if (!r.ok || !m.keymap) {
        if (opts.json) io.stdout(JSON.stringify({ ok: false, diagnostics: ds }, null, 2) + '\n');
        else {
          printDiagnostics(ds, m, io);
          io.stderr(`build failed: ${summarizeCounts(ds)}; nothing was written\n`);
        }
        setExit(EXIT.USER);
        return;
      }
      const stem = m.modelName!;
      const ms = performance.now() - t0;
      if (opts.json) {
        io.stdout(
          JSON.stringify(
            {
              ok: true,
              model: stem,
              version: m.version,
              contract: m.keymap.contract,
              parameters: parameterCount(m.keymap),
              files: written,
              ...(r.weights ? { weights: r.weights } : {}),
              diagnostics: ds,
              ms: Math.round(ms),
              ...(opts.explainDtypes ? { casts: graphs.flatMap((g) => (g.casts ?? []).map((c) => ({ entry: g.metadata['sorac.entry'], value: c.value.name, from: c.from, to: c.to, reason: c.reason, scope: c.scope, source: c.source ? `${c.source.file}:${c.source.line}:${c.source.col}` : null }))) } : {}),
            },
            null,
            2,
          ) + '\n',
        );
      } else {
        printDiagnostics(ds, m, io);
        if (opts.explainDtypes) io.stdout(explainDtypes(m.policy!, graphs));
        io.stdout(`built ${stem} v${m.version} (${parameterCount(m.keymap).toLocaleString('en-US')} parameters, contract ${m.keymap.contract.slice(0, 19)}…) in ${ms.toFixed(0)} ms\n`);
        for (const f of written) io.stdout(`  wrote ${f}\n`);
        if (r.weights === 'inputs')
          io.stdout(`note: no -w: the weights are inputs of ${graphs.map((g) => (g.metadata['sorac.entry'] === 'forward' ? `${stem}.onnx` : `${stem}.${g.metadata['sorac.entry']}.onnx`)).join(', ')} (one per checkpoint key); to write them beside the graph as external data: sorac build ${file} -o ${opts.out} -w CHECKPOINT\n`);
      }
      setExit(EXIT.OK);
    });
};

/** The --explain-dtypes table: the policy, then every float cast per entry with its source and reason. */
export function explainDtypes(p: NonNullable<CompiledModel['policy']>, graphs: readonly IrGraph[]): string {
  const lines = [`dtype policy: params ${p.params}, compute ${p.compute}, inputs ${p.inputs}${p.outputs ? `, outputs ${p.outputs}` : ''}${p.f32.length ? `, f32 [${p.f32.join(', ')}]` : ''}${p.modules.length ? `, modules [${p.modules.map((m) => `${m.glob}: ${m.dtype}`).join(', ')}]` : ''}`];
  for (const g of graphs) {
    const casts = g.casts ?? [];
    lines.push(`${g.metadata['sorac.entry']}: ${casts.length} cast${casts.length === 1 ? '' : 's'}`);
    for (const c of casts) lines.push(`  ${(c.source ? `${c.source.file}:${c.source.line}:${c.source.col}` : '<entry>').padEnd(30)} ${`${c.from}->${c.to}`.padEnd(10)} ${c.value.name.padEnd(40)} ${c.reason}`);
  }
  return lines.join('\n') + '\n';
}
