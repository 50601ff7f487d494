/**
 * `sorac detect WEIGHTS [--model FILE.sora] [--json]`: which model a checkpoint belongs to and at which
 * config, from its header alone: every bundled model (and each `--model` file) is tried, the fits
 * ranked, and the best one printed with its inferred config, what the weights do not determine, and
 * the commands to use it. No model fits: SORA5060 with the closest fit and what disagreed.
 */
import type { DetectCandidate, DetectResult } from '../../api/detect.ts';
import { SoracError } from '../../core/errors.ts';
import type { RegisterCommand } from '../command.ts';

interface DetectOpts {
  json?: boolean;
  model?: string[];
  part?: string;
  container?: string;
  cacheDir?: string;
  revision?: string;
  variant?: string;
}

const fmt = (v: unknown): string => JSON.stringify(v);

function renderCandidate(c: DetectCandidate): string {
  let s = '';
  s += `model:    ${c.model} ${c.version} (${c.file})${c.exact ? ': every key and shape fits' : ''}\n`;
  const det = (c.values ?? []).filter((v) => v.status === 'determined');
  const und = (c.values ?? []).filter((v) => v.status === 'undetermined');
  const con = (c.values ?? []).filter((v) => v.status === 'contradiction');
  if (det.length) {
    s += 'config inferred from the weights:\n';
    const w = Math.max(...det.map((v) => v.key.length));
    for (const v of det) s += `  ${v.key.padEnd(w)} = ${fmt(v.value)}   (${v.evidence})\n`;
  }
  if (und.length) {
    s += 'not determined by the weights (base value: defaults, or config.json / --set when given):\n';
    const w = Math.max(...und.map((v) => v.key.length));
    for (const v of und) s += `  ${v.key.padEnd(w)} = ${fmt(v.value)}   ${v.evidence}\n`;
  }
  for (const v of con) s += `contradiction: ${v.key}: ${v.evidence}\n`;
  for (const e of c.invalid ?? []) s += `the inferred config breaks a rule through a value the weights do not show: ${e}\n  set that value with --set\n`;
  return s;
}

function renderDisagreement(c: DetectCandidate): string {
  let s = '';
  const f = c.fit;
  if (!f) return `  key patterns in common: ${(c.patternOverlap * 100).toFixed(0)}%\n`;
  const list = (xs: readonly string[]) => xs.slice(0, 5).join(', ') + (xs.length > 5 ? `, … ${xs.length - 5} more` : '');
  const n = (k: number) => `${k} tensor${k === 1 ? '' : 's'}`;
  if (f.missing.length) s += `  ${n(f.missing.length)} the model has and the checkpoint lacks: ${list(f.missing)}\n`;
  if (f.unexpected.length) s += `  ${n(f.unexpected.length)} the checkpoint has and the model lacks: ${list(f.unexpected)}\n`;
  if (f.mismatched.length) s += `  ${f.mismatched.length} shape${f.mismatched.length === 1 ? '' : 's'} differ: ${list(f.mismatched.map((m) => `${m.key} [${m.checkpoint.join(', ')}] vs [${m.model.join(', ')}]`))}\n`;
  for (const v of (c.values ?? []).filter((x) => x.status === 'contradiction')) s += `  ${v.key}: ${v.evidence}\n`;
  return s;
}

export function renderDetect(r: DetectResult): string {
  let s = `weights:  ${r.weights}${r.path && !r.path.endsWith(r.weights.replace(/^\.\//, '')) ? ` (${r.path})` : ''}, ${r.tensors} tensors\n`;
  for (const n of r.notes) s += `note: ${n}\n`;
  const top = r.candidates[0]!;
  s += renderCandidate(top);
  if (top.commands?.length) {
    s += 'use it:\n';
    for (const c of top.commands) s += `  ${c}\n`;
  }
  const others = r.candidates.slice(1).filter((c) => c.inferred || c.patternOverlap > 0);
  if (others.length) {
    s += 'other models:\n';
    for (const c of others.slice(0, 4)) s += `  ${c.model} ${c.version} (${c.file}): ${c.inferred ? `${(c.score * 100).toFixed(1)}% of tensors fit at the best config` : `${(c.patternOverlap * 100).toFixed(0)}% of key patterns in common`}\n`;
  }
  return s;
}

export const registerDetect: RegisterCommand = (program, io, setExit) => {
  program
    .command('detect')
    .description('which model and config a checkpoint belongs to, from its header alone: tries every bundled model (and --model files), ranks the fits, prints the inferred config and the commands to use it; offline')
    .argument('<weights>', 'file, directory, Open-Sora training dir, or hub id org/name[@rev][/file] (from the local hub cache)')
    .option('--model <file.sora>', 'also try this model (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--json', 'machine-readable output')
    .option('--part <part>', 'training dirs: ema (default) or model')
    .option('--container <name>', 'load this top-level container of a nested torch file')
    .option('--cache-dir <dir>', 'hub cache to search first')
    .option('--revision <rev>', 'hub revision when the id has no @rev')
    .option('--variant <name>', 'weight variant, e.g. fp16 → model.fp16.safetensors')
    .action(async (weights: string, o: DetectOpts) => {
      // loaded when the command runs, so other commands do not load it (a separate chunk of the bundle)
      const { detect } = await import('../../api/detect.ts');
      const r = await detect(weights, {
        cwd: io.cwd,
        ...(o.model ? { models: o.model } : {}),
        ...(o.part === 'ema' || o.part === 'model' ? { part: o.part } : {}),
        ...(o.container ? { container: o.container } : {}),
        ...(o.cacheDir ? { cacheDir: o.cacheDir } : {}),
        ...(o.revision ? { revision: o.revision } : {}),
        ...(o.variant ? { variant: o.variant } : {}),
      });
      const top = r.candidates[0];
      if (!r.match) {
        const closest = top ? `; closest: ${top.model} ${top.version} (${top.file}), ${top.inferred ? `${(top.score * 100).toFixed(1)}% of tensors fit at the best config found` : `${(top.patternOverlap * 100).toFixed(0)}% of key patterns in common`}` : '';
        const why = top ? `\nwhat disagreed with ${top.model}:\n${renderDisagreement(top).trimEnd()}` : '';
        throw new SoracError('SORA5060', `no ${r.candidates.length ? 'bundled ' : ''}model fits ${weights} (${r.tensors} tensors)${closest}${why}`, {
          hint: `${top?.inferred ? `per-key fixes and the migration that applies (an older release): sorac check ${top.file} --weights ${weights}${(top.sets ?? []).map((x) => ` --set '${x}'`).join('')}\n` : ''}a model sorac does not know (or a modified one): describe it in .sora and pass --model FILE.sora`,
          data: r,
        });
      }
      if (o.json) io.stdout(JSON.stringify({ ok: true, ...r }, null, 2) + '\n');
      else io.stdout(renderDetect(r));
      setExit(0);
    });
};
