/** Shared handling of MODEL.sora + --config/--set/--model for check, build and run. */
import { readFileSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { type CompiledModel, compile } from '../compiler/compile.ts';
import type { Diagnostic } from '../core/diagnostics.ts';
import { diag } from '../core/diagnostics.ts';
import { fsHost } from '../compiler/host.ts';
import type { CliIO } from './io.ts';
import { EXIT, UserError } from './io.ts';
import { renderDiagnostics, type Sources } from './render.ts';

export interface ModelOpts {
  dtype?: string[];
  config?: string;
  set?: string[];
  model?: string;
  json?: boolean;
}

export function addModelOptions(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', 'JSON file of config values (flat; an HF config.json works, extra keys are warned about)')
    .option('-s, --set <key=value>', 'override one config value (repeatable); value is JSON or a bare string', (v: string, prev: string[] = []) => [...prev, v], [] as string[])
    .option('-m, --model <name>', 'which model to compile when the file declares several')
    .option('--json', 'machine-readable output');
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    if (statSync(path).isDirectory()) throw new UserError(`--config ${path} is a directory`, 'pass a JSON file, e.g. config.json');
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`cannot read --config ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'check the path');
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new UserError(`--config ${path} is not valid JSON: ${(e as Error).message}`, 'the config file must be a JSON object of config keys, e.g. {"depth": 4}');
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new UserError(`--config ${path} must contain a JSON object`, 'e.g. {"hidden_size": 1152, "depth": 28}');
  return v as Record<string, unknown>;
}

function parseSets(sets: readonly string[]): [string, string][] {
  return sets.map((s) => {
    const i = s.indexOf('=');
    if (i <= 0) throw new UserError(`--set ${s}: expected key=value`, 'e.g. --set depth=4 or --set patch_size=[1,2,2]', EXIT.USAGE);
    return [s.slice(0, i).trim(), s.slice(i + 1)];
  });
}

export function checkSourceFile(file: string): void {
  let st;
  try {
    st = statSync(file);
  } catch (e) {
    throw new UserError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, 'pass the path of a .sora model file, e.g. examples/stdit3.sora');
  }
  if (st.isDirectory()) throw new UserError(`${file} is a directory`, 'pass a .sora file');
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (e) {
    throw new UserError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'check the file permissions');
  }
  if (buf.includes(0)) throw new UserError(`${file} is a binary file, not .sora source`, 'pass a .sora text file');
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch {
    throw new UserError(`${file} is not valid UTF-8 text`, 'save the file as UTF-8');
  }
}

export function compileFromCli(file: string, opts: ModelOpts, io: CliIO): CompiledModel {
  checkSourceFile(file);
  const set = parseSets(opts.set ?? []);
  const cfgFile = opts.config ? { path: opts.config, values: readConfigFile(opts.config) } : undefined;
  const dtype: Record<string, string> = {};
  for (const d of opts.dtype ?? []) {
    const i = d.indexOf('=');
    if (i <= 0) throw new UserError(`--dtype ${d}: expected rule=value`, 'e.g. --dtype compute=bf16 --dtype params=bf16', EXIT.USAGE);
    dtype[d.slice(0, i).trim()] = d.slice(i + 1).trim();
  }
  return compile({ file, host: fsHost, cwd: io.cwd, ...(opts.model ? { model: opts.model } : {}), config: { ...(cfgFile ? { file: cfgFile } : {}), set }, ...(opts.dtype?.length ? { dtype } : {}) });
}

export function sourcesOf(m: CompiledModel): Sources {
  return new Map([...m.program.files.values()].map((f) => [f.display, f.text]));
}

export function printDiagnostics(ds: readonly Diagnostic[], m: CompiledModel | undefined, io: CliIO): void {
  if (!ds.length) return;
  io.stderr(renderDiagnostics(ds, m ? sourcesOf(m) : new Map(), { pretty: io.isTTY, color: io.color }));
}

export function summarizeCounts(ds: readonly Diagnostic[]): string {
  const e = ds.filter((d) => d.severity === 'error').length;
  const w = ds.filter((d) => d.severity === 'warning').length;
  return `${e} error${e === 1 ? '' : 's'}, ${w} warning${w === 1 ? '' : 's'}`;
}

export { diag };
