/**
 * sorac generate PIPELINE.sora --prompt "..." [--prompts FILE] [--negative-prompt S] [--num-frames N]
 *   [--resolution 240p|...|HxW] [--aspect-ratio 9:16] [--fps N] [--steps N] [--cfg-scale F] [--seed N]
 *   [--device auto|cpu|cuda] [--set k=v] [--pipeline NAME] -o out.mp4 [--force] [--frames]
 *   [--save-latents F] [--no-contact-sheet] [--noise FILE] [--dry-run] [--json]
 *
 * Compiles the pipeline, plans the run (every component resolved and validated offline, sizes checked,
 * memory estimated per stage), then runs the stages one after the other and writes the video, a contact
 * sheet and, if asked, the latents. --dry-run stops after the plan. On a terminal a progress bar follows
 * the sampling loop; with --json, progress events go to stderr as JSON lines and stdout carries exactly one
 * JSON document (the plan for --dry-run, the result otherwise, or `{ ok: false, error }`).
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { GenerateEvent, GenerationPlan } from '../../api/pipeline.ts';
import { formatBytes } from '../../api/weights.ts';
import { hasErrors } from '../../core/diagnostics.ts';
import { SoracError } from '../../core/errors.ts';
import type { RegisterCommand } from '../command.ts';
import { EXIT, usageError, type CliIO } from '../io.ts';
import { printPipelineDiagnostics } from '../pipeline-args.ts';
import { stepBar } from '../progress.ts';
import { parseKeyValues, summarizeCounts } from '../model-args.ts';

interface GenerateOpts {
  prompt?: string[];
  prompts?: string;
  negativePrompt?: string;
  numFrames?: string;
  resolution?: string;
  aspectRatio?: string;
  fps?: string;
  steps?: string;
  cfgScale?: string;
  seed?: string;
  device: string;
  set?: string[];
  weights?: string[];
  dtype?: string[];
  allowLossy?: boolean;
  pipeline?: string;
  out?: string;
  force?: boolean;
  frames?: boolean;
  saveLatents?: string;
  contactSheet: boolean;
  noise?: string;
  dryRun?: boolean;
  json?: boolean;
}

function int(name: string, v: string | undefined, min = 1): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min) throw usageError(`${name} ${v}: expected an integer >= ${min}`);
  return n;
}

const MODEL_ROLES = ['text_encoder', 'text_encoder_2', 'transformer', 'vae'] as const;

/** `--dtype rule=value` (every model component) and `--dtype component.rule=value` (one). */
function parseDtype(items: readonly string[]): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const [k, v] of parseKeyValues('--dtype', items, 'e.g. --dtype compute=bf16 --dtype params=bf16, or --dtype transformer.compute=bf16')) {
    const dot = k.indexOf('.');
    const role = dot < 0 ? '*' : k.slice(0, dot);
    if (role !== '*' && !(MODEL_ROLES as readonly string[]).includes(role)) throw usageError(`--dtype ${k}=${v}: "${role}" is not a model component`, `model components: ${MODEL_ROLES.join(', ')}; without a prefix the rule applies to all of them`);
    (out[role] ??= {})[dot < 0 ? k : k.slice(dot + 1)] = v.trim();
  }
  return out;
}

/** One prompt per non-empty line (lines starting with # are comments). */
function readPrompts(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new SoracError('SORA7001', `cannot read --prompts ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { hint: 'a text file with one prompt per line', path });
  }
  const prompts = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  if (!prompts.length) throw new SoracError('SORA8301', `--prompts ${path} has no prompt`, { hint: 'one prompt per line; lines starting with # are comments', path });
  return prompts;
}

export function renderPlan(plan: GenerationPlan): string {
  const lines = [
    `pipeline ${plan.pipeline.name} v${plan.pipeline.version} (${plan.pipeline.file}; Open-Sora ${plan.pipeline.release} conditioning)`,
    `  ${plan.prompts.length} prompt(s); ${plan.numFrames} frame(s) of ${plan.height}x${plan.width} at ${plan.fps} fps; latent [${plan.latentShape.join(', ')}]`,
    `  ${plan.scheduler.kind}: ${plan.scheduler.steps} steps, cfg ${plan.scheduler.cfgScale}; seed ${plan.seed}; tokens ${plan.maxLength}`,
    `  tokenizer: ${plan.tokenizer.path} (${plan.tokenizer.kind}, ${plan.tokenizer.vocabSize} ids)`,
    ...(plan.tokenizer2 ? [`  tokenizer_2: ${plan.tokenizer2.path} (${plan.tokenizer2.kind}, ${plan.tokenizer2.vocabSize} ids, ${plan.tokenizer2.maxLength} tokens)`] : []),
    ...plan.weights.map((w) => `  ${w.component.padEnd(12)} ${w.path}  (${w.tensors} tensors, ${formatBytes(w.bytes)}; load report ok)`),
    '  stages (run one after the other; each releases its memory):',
    ...plan.stages.map((s) => `    ${s.name.padEnd(8)} ${s.components.join(' + ').padEnd(26)} weights ${formatBytes(s.weightBytes).padStart(9)}   est. peak ${formatBytes(s.estimatedPeakBytes).padStart(9)}   device ${s.device}`),
    `  estimated peak of the run: ${formatBytes(Math.max(...plan.stages.map((s) => s.estimatedPeakBytes)))} (the largest stage)${plan.vaeMicroBatch ? `; VAE decoded ${plan.vaeMicroBatch.size} along ${plan.vaeMicroBatch.axis} at a time` : ''}`,
    ...plan.notes.map((n) => `  ${n}`),
  ];
  return lines.join('\n') + '\n';
}

export const registerGenerate: RegisterCommand = (program: Command, io: CliIO, setExit) => {
  program
    .command('generate')
    .argument('<pipeline>', '.sora pipeline file')
    .description('generate a video from a prompt with a pipeline (tokenizer, text encoder, transformer, VAE), offline')
    .option('-p, --prompt <text>', 'the prompt (repeatable: one video per prompt)', (v: string, p: string[] = []) => [...p, v], [] as string[])
    .option('--prompts <file>', 'a text file with one prompt per line')
    .option('--negative-prompt <text>', 'use this prompt instead of the learned null caption for guidance (not in the 1.x releases; Open-Sora 2.0: instead of "")')
    .option('-n, --num-frames <n>', 'frames (or a name such as 2s, 4x)')
    .option('-r, --resolution <res>', '144p|240p|360p|480p|720p|1080p|... or HxW')
    .option('-a, --aspect-ratio <ratio>', 'e.g. 9:16, 16:9, 1:1')
    .option('--fps <n>', 'frames per second of the video (and of the conditioning)')
    .option('--steps <n>', 'sampling steps')
    .option('--cfg-scale <f>', 'classifier-free guidance scale')
    .option('--seed <n>', 'noise seed (sorac\'s own generator: Philox4x32-10)')
    .option('-d, --device <device>', 'auto | cpu | cuda', 'auto')
    .option('-s, --set <key=value>', 'override a pipeline setting or component config (repeatable): num_frames=34, transformer.depth=4', (v: string, p: string[] = []) => [...p, v], [] as string[])
    .option('-w, --weights <component=path>', "take a component's weights from here instead of its `from` (repeatable): transformer=./ckpts/stdit3", (v: string, p: string[] = []) => [...p, v], [] as string[])
    .option('--dtype <[component.]rule=value>', 'dtype policy of the model components (repeatable): compute=bf16, params=bf16 (all), transformer.compute=bf16 (one)', (v: string, p: string[] = []) => [...p, v], [] as string[])
    .option('--allow-lossy', 'accept narrowing checkpoint dtypes at load (f32 weights with --dtype params=bf16)')
    .option('--pipeline <name>', 'which pipeline, when the file declares several')
    .option('-o, --out <file>', 'the video to write (.mp4); several prompts give name_0000.mp4, ...')
    .option('--force', 'replace existing outputs (atomically)')
    .option('--frames', 'write PNG frames in a directory instead of an mp4')
    .option('--save-latents <file>', 'also write the final latents (safetensors)')
    .option('--no-contact-sheet', 'do not write the contact-sheet PNG')
    .option('--noise <file>', 'initial and per-step noise from a safetensors file (parity runs)')
    .option('--dry-run', 'resolve and validate everything, print the plan and the memory estimate, run nothing')
    .option('--json', 'machine-readable output (events on stderr as JSON lines, one result document on stdout)')
    .action(async (file: string, o: GenerateOpts) => {
      // loaded when the command runs, so other commands do not load it (a separate chunk of the bundle)
      const { generate, loadPipeline, planGeneration } = await import('../../api/pipeline.ts');
      if (!['auto', 'cpu', 'cuda'].includes(o.device)) throw usageError(`--device ${o.device} is not one of auto, cpu, cuda`);
      const prompts = [...(o.prompt ?? []), ...(o.prompts ? readPrompts(o.prompts) : [])];
      if (!o.dryRun && !o.out) throw usageError('-o/--out is required (the video to write)', 'e.g. -o out/clip.mp4, or --dry-run to only plan');
      const cfgScale = o.cfgScale === undefined ? undefined : Number(o.cfgScale);
      if (cfgScale !== undefined && !Number.isFinite(cfgScale)) throw usageError(`--cfg-scale ${o.cfgScale}: expected a number`);
      const req = {
        prompts,
        ...(o.negativePrompt !== undefined ? { negativePrompt: o.negativePrompt } : {}),
        ...(o.numFrames !== undefined ? { numFrames: o.numFrames } : {}),
        ...(o.resolution !== undefined ? { resolution: o.resolution } : {}),
        ...(o.aspectRatio !== undefined ? { aspectRatio: o.aspectRatio } : {}),
        ...(o.fps !== undefined ? { fps: int('--fps', o.fps) } : {}),
        ...(o.steps !== undefined ? { steps: int('--steps', o.steps) } : {}),
        ...(cfgScale !== undefined ? { cfgScale } : {}),
        ...(o.seed !== undefined ? { seed: int('--seed', o.seed, 0) } : {}),
        ...(o.noise !== undefined ? { noise: o.noise } : {}),
        ...(o.allowLossy ? { allowLossy: true } : {}),
        device: o.device as 'auto' | 'cpu' | 'cuda',
      };
      const weights = Object.fromEntries(parseKeyValues('--weights', o.weights ?? [], 'e.g. --weights transformer=./ckpts/stdit3'));
      for (const k of Object.keys(weights)) if (!['tokenizer', 'text_encoder', 'tokenizer_2', 'text_encoder_2', 'transformer', 'vae'].includes(k)) throw usageError(`--weights ${k}=...: "${k}" is not a component with weights`, 'components: tokenizer, text_encoder, tokenizer_2, text_encoder_2, transformer, vae');
      const dtype = parseDtype(o.dtype ?? []);
      const set = parseKeyValues('--set', o.set ?? [], 'e.g. --set num_frames=34 or --set transformer.depth=4');
      const p = loadPipeline({ file, cwd: io.cwd, set, weights, ...(Object.keys(dtype).length ? { dtype } : {}), ...(o.pipeline ? { pipeline: o.pipeline } : {}) });
      if (hasErrors(p.diagnostics)) {
        if (o.json) io.stdout(JSON.stringify({ ok: false, diagnostics: p.diagnostics }, null, 2) + '\n');
        else {
          printPipelineDiagnostics(p, io);
          io.stderr(`generate failed: ${summarizeCounts(p.diagnostics)}; nothing was run\n`);
        }
        setExit(EXIT.USER);
        return;
      }
      if (o.dryRun) {
        const plan = await planGeneration(p, req);
        if (o.json) io.stdout(JSON.stringify({ ok: true, dryRun: true, plan }, null, 2) + '\n');
        else io.stdout(renderPlan(plan) + 'dry run: nothing was run\n');
        setExit(EXIT.OK);
        return;
      }
      // Ctrl-C / SIGTERM: stop between steps; generate removes what it had started to write
      const ac = new AbortController();
      const stop = () => ac.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      const bar = io.isTTY && !o.json ? stepBar(io, 'denoise') : undefined;
      const seen = new Set<string>(); // each stage loads its own session: the same device note once
      const onEvent = (e: GenerateEvent) => {
        if (o.json) {
          if (e.type !== 'step' || e.done === e.total || e.done % 5 === 0) io.stderr(JSON.stringify(e) + '\n');
          return;
        }
        if (e.type === 'step') return bar?.update(e.done, e.total, e.ms);
        bar?.done();
        if (e.type === 'note') {
          if (!seen.has(e.message)) io.stderr(`${e.message}\n`);
          seen.add(e.message);
        }
        else if (e.type === 'stage' && e.state === 'end') io.stderr(`${e.stage}: ${(e.ms! / 1000).toFixed(2)} s on ${e.device}\n`);
      };
      try {
        const r = await generate(p, { ...req, out: o.out!, contactSheet: o.contactSheet, signal: ac.signal, onEvent, cwd: io.cwd, ...(o.force ? { force: true } : {}), ...(o.frames ? { frames: true } : {}), ...(o.saveLatents ? { saveLatents: o.saveLatents } : {}) });
        bar?.done();
        if (o.json) io.stdout(JSON.stringify({ ok: true, outputs: r.outputs, stages: r.stages.map((s) => ({ ...s, ms: Math.round(s.ms) })), plan: r.plan }, null, 2) + '\n');
        else {
          io.stdout(renderPlan(r.plan));
          io.stdout(`generated ${r.plan.prompts.length} video(s) in ${(r.stages.reduce((a, s) => a + s.ms, 0) / 1000).toFixed(1)} s (${r.stages.map((s) => `${s.name} ${(s.ms / 1000).toFixed(1)} s`).join(', ')}):\n`);
          for (const f of r.outputs) io.stdout(`  wrote ${f.path}\n`);
        }
        setExit(EXIT.OK);
      } catch (e) {
        bar?.done();
        if (e instanceof SoracError && (e.code === 'SORA8214' || e.code === 'SORA7009')) throw new SoracError('SORA7009', 'interrupted: generation stopped, nothing was written');
        throw e;
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });
};
