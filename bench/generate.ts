/**
 * Memory of `sorac generate`: is the peak RSS of a whole run the peak of its largest stage, and how close is the
 * `--dry-run` estimate?
 *
 *   npx tsx bench/generate.ts [--size medium|large] [--keep] [--dir DIR (reuse the weights a --keep run left)]
 *
 * Builds a pipeline with seeded random weights (the numbers do not matter for memory) at a size where weights and
 * activations dominate the process's baseline, then measures with `/usr/bin/time -v` (maximum resident set size),
 * each in a fresh process:
 *   - the whole run: `sorac generate PIPELINE -p ... -o out.mp4 --frames`;
 *   - each stage alone (text, denoise, decode) with the same inputs, through the same api functions;
 *   - the `--dry-run` estimate per stage.
 * Prints one table and the two ratios the issue asks for.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadPipeline, planGeneration } from '../api/pipeline.ts';
import { writeRandomWeights } from '../tests/helpers/random-weights.ts';

const ROOT = join(fileURLToPath(import.meta.url), '..', '..');
const args = process.argv.slice(2);
const size = args.includes('--size') ? args[args.indexOf('--size') + 1]! : 'medium';
const keep = args.includes('--keep');

const SIZES: Record<string, { t5: string; dit: string; vae: string; res: string; frames: number; tokens: number }> = {
  medium: {
    t5: 'vocab_size=32128, d_model=1024, d_kv=64, d_ff=2816, num_layers=8, num_heads=16',
    dit: 'hidden_size=768, depth=8, num_heads=12, caption_channels=1024, model_max_length=120',
    vae: '',
    res: '256x256',
    frames: 16,
    tokens: 120,
  },
  large: {
    t5: 'vocab_size=32128, d_model=2048, d_kv=64, d_ff=5120, num_layers=12, num_heads=32',
    dit: 'hidden_size=1152, depth=14, num_heads=16, caption_channels=2048, model_max_length=200',
    vae: '',
    res: '256x256',
    frames: 32,
    tokens: 200,
  },
};
const S = SIZES[size];
if (!S) throw new Error(`--size ${size}: medium or large`);

const reuse = args.includes('--dir') ? args[args.indexOf('--dir') + 1]! : undefined;
const dir = reuse ?? mkdtempSync(join(tmpdir(), 'sorac-bench-generate-'));
const ex = (f: string) => JSON.stringify(join(ROOT, 'examples', f));
const pipeline = join(dir, 'bench.sora');
writeFileSync(
  pipeline,
  `import { T5Encoder } from ${ex('t5.sora')}
import { STDiT3 } from ${ex('stdit3.sora')}
import { AutoencoderKL } from ${ex('sd_vae.sora')}

pipeline Bench version "0" {
  config {
    release: str = "v1.2"
    resolution: str = ${JSON.stringify(S.res)}
    num_frames: int = ${S.frames}
    fps: int = 24
    seed: int = 1
  }
  tokenizer = t5_tokenizer(max_length=${S.tokens}) from ${JSON.stringify(join(ROOT, 'tests', 'fixtures', 'tokenizer', 't5like.model'))}
  text_encoder = T5Encoder(${S.t5}) from "./te.safetensors"
  transformer = STDiT3(${S.dit}) from "./tr.safetensors"
  vae = AutoencoderKL(${S.vae}) from "./vae.safetensors"
  scheduler = rflow(num_sampling_steps=4, cfg_scale=7.0)
}
`,
);
const p = loadPipeline({ file: pipeline, cwd: dir });
if (p.diagnostics.some((d) => d.severity === 'error')) throw new Error(p.diagnostics.map((d) => d.message).join('\n'));
if (!reuse) {
  console.log(`writing random weights into ${dir} ...`);
  await writeRandomWeights(p.components.text_encoder!.model!, join(dir, 'te.safetensors'), 1);
  await writeRandomWeights(p.components.transformer!.model!, join(dir, 'tr.safetensors'), 2);
  await writeRandomWeights(p.components.vae!.model!, join(dir, 'vae.safetensors'), 3);
}
const plan = await planGeneration(p, { prompts: ['a red ball moving right'], device: 'cpu' });

/** Peak RSS (bytes) and wall time of a command, from /usr/bin/time -v. */
function measure(cmd: string[], env: NodeJS.ProcessEnv = process.env): { rss: number; seconds: number } {
  const r = spawnSync('/usr/bin/time', ['-v', ...cmd], { cwd: ROOT, env, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} failed:\n${r.stderr}`);
  const rss = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr)![1]) * 1024;
  const el = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)/.exec(r.stderr)!;
  return { rss, seconds: Number(el[1] ?? 0) * 3600 + Number(el[2]) * 60 + Number(el[3]) };
}

const node = process.execPath;
const tsx = [node, '--import', 'tsx'];
const stageScript = join(ROOT, 'bench', 'generate-stage.ts');
execFileSync(node, [join(ROOT, 'scripts', 'bundle.mjs')]);
const whole = measure([node, join(ROOT, 'bin', 'sorac.js'), 'generate', pipeline, '-p', 'a red ball moving right', '-o', join(dir, 'out.mp4'), '--frames', '--force', '--device', 'cpu']);
const stages = (['text', 'denoise', 'decode'] as const).map((s) => ({ name: s, ...measure([...tsx, stageScript, pipeline, s], { ...process.env, NODE_OPTIONS: '' }) }));
const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
const largest = Math.max(...stages.map((s) => s.rss));
const estimate = Math.max(...plan.stages.map((s) => s.estimatedPeakBytes));
console.log(`\nsorac generate memory, size ${size}: ${S.frames} frames of ${S.res}, latent [${plan.latentShape.join(', ')}], ${S.tokens} tokens, 4 steps, CPU`);
console.log('| stage | weights | estimate (--dry-run) | measured peak RSS (stage alone) | estimate / measured |');
console.log('|---|---|---|---|---|');
for (const s of stages) {
  const e = plan.stages.find((x) => x.name === s.name)!;
  console.log(`| ${s.name} | ${mb(e.weightBytes)} | ${mb(e.estimatedPeakBytes)} | ${mb(s.rss)} (${s.seconds.toFixed(1)} s) | ${(e.estimatedPeakBytes / s.rss).toFixed(2)} |`);
}
console.log(`| whole run | | ${mb(estimate)} | ${mb(whole.rss)} (${whole.seconds.toFixed(1)} s) | ${(estimate / whole.rss).toFixed(2)} |`);
console.log(`\nwhole-run peak / largest stage alone = ${(whole.rss / largest).toFixed(3)} (target <= 1.10)`);
console.log(`dry-run estimate / measured whole-run peak = ${(estimate / whole.rss).toFixed(3)} (target within 0.75..1.25)`);
if (!keep && !reuse) rmSync(dir, { recursive: true, force: true });
else console.log(`kept ${dir}`);
