/**
 * sorac check MODEL.sora [--config f] [--set k=v] [--weights W [--allow-missing P]] [--json]
 *
 * Compiles the model (names, config, declarations), traces every entry point with its optional
 * inputs present and absent (shapes and dtypes of every forward path), and with --weights
 * validates a checkpoint against the model's key/shape map (the load report).
 */
import type { Command } from 'commander';
import { checkModel } from '../../api/model.ts';
import { renderLoadReport } from '../../api/weights.ts';
import { parameterCount } from '../../core/keymap.ts';
import type { RegisterCommand } from '../command.ts';
import type { CliIO } from '../io.ts';
import { EXIT } from '../io.ts';
import { addModelOptions, compileForWeights, type ModelOpts, printDiagnostics, summarizeCounts } from '../model-args.ts';
import { isPipelineSource } from '../../api/model.ts';
import { printPipelineDiagnostics } from '../pipeline-args.ts';
import { usageError } from '../io.ts';

/** `sorac check PIPELINE.sora`: every component compiled at its config, and whether they fit each other. */
async function checkPipeline(file: string, opts: ModelOpts & { weights?: string }, io: CliIO, setExit: (n: number) => void): Promise<void> {
  if (opts.weights) throw usageError('--weights applies to a model file; a pipeline names its weights itself', 'use `sorac generate PIPELINE.sora --dry-run` to resolve and validate every component\'s weights');
  const sets = (opts.set ?? []).map((s) => {
    const i = s.indexOf('=');
    if (i <= 0) throw usageError(`--set ${s}: expected key=value`);
    return [s.slice(0, i).trim(), s.slice(i + 1)] as [string, string];
  });
  // loaded when the command runs, so other commands do not load it (a separate chunk of the bundle)
  const { loadPipeline } = await import('../../api/pipeline.ts');
  const p = loadPipeline({ file, cwd: io.cwd, set: sets });
  const ok = !p.diagnostics.some((d) => d.severity === 'error');
  if (opts.json) {
    const components = Object.fromEntries(Object.entries(p.components).map(([k, c]) => [k, { kind: c!.kind, from: c!.from ?? null, model: c!.model?.modelName ?? null, contract: c!.model?.keymap?.contract ?? null, parameters: c!.model?.keymap ? parameterCount(c!.model.keymap) : 0, options: c!.options }]));
    io.stdout(JSON.stringify({ ok, pipeline: p.name ?? null, version: p.version ?? null, config: p.config, components, diagnostics: p.diagnostics }, null, 2) + '\n');
  } else {
    printPipelineDiagnostics(p, io);
    if (ok) {
      io.stdout(`ok: pipeline ${p.name} v${p.version}: components fit each other\n`);
      for (const [k, c] of Object.entries(p.components))
        io.stdout(`  ${k.padEnd(12)} ${c!.model ? `${c!.model.modelName} (${parameterCount(c!.model.keymap!).toLocaleString('en-US')} parameters)` : `${c!.kind}(${Object.entries(c!.options).map(([n, v]) => `${n}=${JSON.stringify(v)}`).join(', ')})`}${c!.from ? ` from ${JSON.stringify(c!.from)}` : ''}\n`);
    } else io.stderr(`check failed: ${summarizeCounts(p.diagnostics)}\n`);
  }
  setExit(ok ? EXIT.OK : EXIT.USER);
}

export const registerCheck: RegisterCommand = (program: Command, io: CliIO, setExit) => {
  addModelOptions(program.command('check').argument('<model>', '.sora model file'))
    .description('check a model: names, config, shapes and dtypes of every entry point; with --weights, validate a checkpoint')
    .option('-w, --weights <weights>', 'checkpoint to validate against the model (file, dir, or hub id resolved offline)')
    .option('--allow-missing <pattern>', 'glob of keys that may be missing from the checkpoint (repeatable)', (v: string, p: string[] = []) => [...p, v], [] as string[])
    .option('--from <part>', 'for training checkpoint dirs: ema or model', 'ema')
    .option('--dtype <rule=value>', 'override a dtype policy rule, e.g. --dtype compute=bf16 (repeatable)', (v: string, p: string[] = []) => [...p, v], [] as string[])
    .action(async (file: string, opts: ModelOpts & { weights?: string; allowMissing?: string[]; from?: string }) => {
      if (isPipelineSource(file)) return checkPipeline(file, opts, io, setExit);
      const configNotes: string[] = [];
      const m = await compileForWeights(file, opts, io, opts.weights, opts.from === 'model' ? 'model' : 'ema', configNotes);
      const r = await checkModel(m, { ...(opts.weights ? { weights: opts.weights } : {}), allowMissing: opts.allowMissing ?? [], part: opts.from === 'model' ? 'model' : 'ema', cwd: io.cwd });
      const compiled = r.diagnostics.every((d) => d.severity !== 'error');
      if (opts.json) {
        io.stdout(
          JSON.stringify(
            {
              ok: r.ok,
              model: m.modelName ?? null,
              version: m.version ?? null,
              contract: m.keymap?.contract ?? null,
              tensors: m.keymap ? Object.keys(m.keymap.tensors).length : 0,
              parameters: m.keymap ? parameterCount(m.keymap) : 0,
              entries: m.entries.map((e) => ({ name: e.name, inputs: e.inputs.map((i) => ({ name: i.name, optional: i.optional })), outputs: e.outputs })),
              diagnostics: r.diagnostics,
              ...(configNotes.length ? { configNotes } : {}),
              ...(r.report ? { loadReport: r.report } : {}),
            },
            null,
            2,
          ) + '\n',
        );
      } else {
        printDiagnostics(r.diagnostics, m, io);
        if (compiled && m.keymap) {
          io.stdout(`ok: ${m.modelName} v${m.version}: ${Object.keys(m.keymap.tensors).length} tensors, ${parameterCount(m.keymap).toLocaleString('en-US')} parameters; entries: ${m.entries.map((e) => e.name).join(', ')}\n`);
          if (r.report) {
            const text = renderLoadReport(r.report);
            io.stdout(text.endsWith('\n') ? text : text + '\n');
          }
        } else io.stderr(`check failed: ${summarizeCounts(r.diagnostics)}\n`);
      }
      setExit(r.ok ? EXIT.OK : EXIT.USER);
    });
};
