/** Shared handling of MODEL.sora + --config/--set/--model/--dtype for the commands that compile a model. */
import type { Command } from 'commander';
import { chooseConfig } from '../api/config-source.ts';
import { type CompiledModel, loadModel, modelSources } from '../api/model.ts';
import type { Diagnostic } from '../core/diagnostics.ts';
import type { CliIO } from './io.ts';
import { usageError } from './io.ts';
import { renderDiagnostics } from './render.ts';

export interface ModelOpts {
  dtype?: string[];
  config?: string;
  set?: string[];
  model?: string;
  json?: boolean;
}

export function addModelOptions(cmd: Command): Command {
  return cmd
    .option('-c, --config <file|dir|hub-id|auto>', 'config values: a JSON file (flat; an HF config.json works, extra keys are warned about), a directory or hub id holding config.json, or auto (inferred from --weights; the default when --weights is given)')
    .option('-s, --set <key=value>', 'override one config value (repeatable); value is JSON or a bare string', (v: string, prev: string[] = []) => [...prev, v], [] as string[])
    .option('-m, --model <name>', 'which model to compile when the file declares several')
    .option('--json', 'machine-readable output');
}

/** `key=value` items of a repeatable option, split at the first `=`; a usage error names the flag and an example. */
export function parseKeyValues(flag: string, items: readonly string[], example: string): [string, string][] {
  return items.map((s) => {
    const i = s.indexOf('=');
    if (i <= 0) throw usageError(`${flag} ${s}: expected key=value`, example);
    return [s.slice(0, i).trim(), s.slice(i + 1)];
  });
}

function parseSets(sets: readonly string[]): [string, string][] {
  return parseKeyValues('--set', sets, 'e.g. --set depth=4 or --set patch_size=[1,2,2]');
}

function parseDtypeRules(rules: readonly string[]): Record<string, string> {
  return Object.fromEntries(parseKeyValues('--dtype', rules, 'e.g. --dtype compute=bf16 --dtype params=bf16').map(([k, v]) => [k, v.trim()]));
}

export function compileFromCli(file: string, opts: ModelOpts, io: CliIO): CompiledModel {
  const set = parseSets(opts.set ?? []);
  const dtype = parseDtypeRules(opts.dtype ?? []);
  return loadModel({ file, cwd: io.cwd, set, dtype, ...(opts.model ? { model: opts.model } : {}), ...(opts.config ? { configPath: opts.config } : {}) });
}

/**
 * Compile for a checkpoint: the config from --config (file, directory, hub id), else a config.json beside
 * the weights and the config inferred from them (`--config auto`, the default with weights); one note line
 * per choice on stderr (with --json, in `notesOut` for the command's document).
 */
export async function compileForWeights(file: string, opts: ModelOpts, io: CliIO, weights: string | undefined, part?: 'ema' | 'model', notesOut?: string[]): Promise<CompiledModel> {
  const set = parseSets(opts.set ?? []);
  const dtype = parseDtypeRules(opts.dtype ?? []);
  const c = await chooseConfig({ file, cwd: io.cwd, set, ...(opts.config ? { config: opts.config } : {}), ...(opts.model ? { model: opts.model } : {}), ...(weights ? { weights } : {}), ...(part ? { part } : {}) });
  if (!opts.json) for (const n of c.notes) io.stderr(`note: ${n}\n`);
  notesOut?.push(...c.notes);
  return loadModel({ file, cwd: io.cwd, set, dtype, ...(opts.model ? { model: opts.model } : {}), ...(c.configPath ? { configPath: c.configPath } : {}), ...(c.values ? { values: c.values } : {}) });
}

export function printDiagnostics(ds: readonly Diagnostic[], m: CompiledModel | undefined, io: CliIO): void {
  if (!ds.length) return;
  io.stderr(renderDiagnostics(ds, m ? modelSources(m) : new Map(), { pretty: io.isTTY, color: io.color }));
}

export function summarizeCounts(ds: readonly Diagnostic[]): string {
  const e = ds.filter((d) => d.severity === 'error').length;
  const w = ds.filter((d) => d.severity === 'warning').length;
  return `${e} error${e === 1 ? '' : 's'}, ${w} warning${w === 1 ? '' : 's'}`;
}
