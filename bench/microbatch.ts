/**
 * Peak RSS of decoding video latents of increasing frame count, one pass vs micro-batched
 * (runtime/execution/micro-batch.ts, docs/adr/005-micro-batching.md), each run in a fresh process.
 *
 *   npx tsx bench/microbatch.ts [--model sd_vae|pipeline] [--frames 8,32,128] [--latent 8] [--micro 4] [--device cpu]
 *
 * --model sd_vae (default): examples/sd_vae.sora at the released SD/SDXL VAE architecture (83.6 M parameters),
 * entry decode_video (Open-Sora's per-frame VideoAutoencoderKL.decode), latents [1, 4, F, s, s] (s = --latent;
 * frames of 8 s x 8 s pixels), micro-batched along T, --micro frames per run (default 4).
 * --model pipeline: examples/vae_pipeline_v12.sora at the released size (393.3 M), entry decode(z, num_frames)
 * of F frames (F a multiple of 17; default frames 17,34,68,136), latents [1, 4, 5 F / 17, s, s], micro-batched
 * along Tz, --micro latent frames per run (default 5 = one micro-frame chunk).
 * Weights are random (written once to a temp checkpoint). One pass: one session.run, outputs written with
 * writeTensorsFile. Micro-batched: runMicroBatched, outputs streamed into the output file. Each run is a fresh
 * process; peak RSS = process.resourceUsage().maxRSS of the child.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compile, traceEntry } from '../compiler/compile.ts';
import { fsHost } from '../compiler/host.ts';
import type { HostTensor } from '../core/host-tensor.ts';
import { planMicroBatch, runMicroBatched } from '../runtime/execution/micro-batch.ts';
import { safetensorsWeightSource } from '../runtime/execution/binding.ts';
import { createSession } from '../api/session.ts';
import { writeTensorsFile } from '../runtime/formats/tensors-io.ts';

const args = process.argv.slice(2);
const opt = (name: string, d: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : d;
};

function rand(n: number, seed: number, scale: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    a[i] = ((s / 2 ** 32) * 2 - 1) * scale;
  }
  return a;
}

const MODELS = {
  sd_vae: { file: 'examples/sd_vae.sora', entry: 'decode_video', axis: 'T', frames: '8,32,128', micro: '4' },
  pipeline: { file: 'examples/vae_pipeline_v12.sora', entry: 'decode', axis: 'Tz', frames: '17,34,68,136', micro: '5' },
} as const;
type ModelName = keyof typeof MODELS;

function model(name: ModelName) {
  const m = compile({ file: MODELS[name].file, host: fsHost, config: { values: {} } });
  if (!m.keymap) throw new Error(m.diagnostics.map((d) => d.message).join('\n'));
  return m;
}

async function child(): Promise<void> {
  const [name, weights, mode, framesS, latentS, microS, device, out] = args.slice(1) as [ModelName, ...string[]];
  const spec = MODELS[name];
  const F = Number(framesS);
  const s = Number(latentS);
  const tr = traceEntry(model(name), spec.entry);
  const w = await safetensorsWeightSource([weights!]);
  const session = await createSession(tr.graph!, w, { device: device as 'cpu' });
  const T = name === 'pipeline' ? (5 * F) / 17 : F;
  const inputs = new Map<string, HostTensor>([['z', { dtype: 'f32', shape: [1, 4, T, s, s], data: rand(4 * T * s * s, 7, 1) }]]);
  if (name === 'pipeline') inputs.set('num_frames', { dtype: 'i64', shape: [], data: new BigInt64Array([BigInt(F)]) });
  const t0 = performance.now();
  if (mode === 'one-pass') {
    const o = await session.run(inputs);
    await writeTensorsFile(out!, o);
  } else {
    await runMicroBatched(session, planMicroBatch(tr.graph!, { axis: spec.axis }), inputs, { size: Number(microS), out: { path: out! } });
  }
  const ms = performance.now() - t0;
  await session.release();
  await w.close();
  process.stdout.write(JSON.stringify({ maxRssMiB: process.resourceUsage().maxRSS / 1024, ms }) + '\n');
}

async function parent(): Promise<void> {
  const name = opt('model', 'sd_vae') as ModelName;
  if (!(name in MODELS)) throw new Error(`--model ${name}: one of ${Object.keys(MODELS).join(', ')}`);
  const spec = MODELS[name];
  const frames = opt('frames', spec.frames).split(',').map(Number);
  if (name === 'pipeline' && frames.some((f) => f % 17)) throw new Error('--model pipeline: frame counts must be multiples of 17');
  const latent = Number(opt('latent', '8'));
  const micro = Number(opt('micro', spec.micro));
  const device = opt('device', 'cpu');
  const dir = mkdtempSync(join(tmpdir(), 'sorac-bench-mb-'));
  try {
    // released architecture, random weights (normal-ish, small: GroupNorm keeps activations bounded)
    const m = model(name);
    const tensors = new Map<string, HostTensor>();
    let seed = 1;
    for (const [k, e] of Object.entries(m.keymap!.tensors)) {
      const n = e.shape.reduce((a, b) => a * b, 1);
      const isNormWeight = /norm.*\.weight$/.test(k);
      tensors.set(k, { dtype: 'f32', shape: e.shape, data: isNormWeight ? new Float32Array(n).fill(1) : rand(n, seed++, 0.02) });
    }
    const weights = join(dir, `${name}.random.safetensors`);
    await writeTensorsFile(weights, tensors);
    tensors.clear();
    const self = fileURLToPath(import.meta.url);
    const params = Object.values(m.keymap!.tensors).reduce((a, e) => a + e.shape.reduce((x, y) => x * y, 1), 0);
    console.log(
      `${m.modelName}.${spec.entry} (${(params / 1e6).toFixed(1)} M params, random weights), ${name === 'pipeline' ? `latents [1, 4, 5F/17, ${latent}, ${latent}]` : `latents [1, 4, F, ${latent}, ${latent}]`} -> F frames of ${8 * latent}x${8 * latent}, ${device}; micro-batch ${micro} along ${spec.axis}; peak RSS per fresh process`,
    );
    console.log('frames | one-pass peak RSS | micro-batched peak RSS | one-pass time | micro-batched time');
    console.log('-----: | ----------------: | ---------------------: | ------------: | -----------------:');
    for (const F of frames) {
      const res: Record<string, { maxRssMiB: number; ms: number }> = {};
      for (const mode of ['one-pass', 'micro']) {
        const out = join(dir, `out-${mode}-${F}.safetensors`);
        const stdout = execFileSync(process.execPath, ['--import', 'tsx', self, '--child', name, weights, mode, String(F), String(latent), String(micro), device, out], { encoding: 'utf8', maxBuffer: 1 << 20 });
        res[mode] = JSON.parse(stdout.trim().split('\n').pop()!);
        rmSync(out, { force: true });
      }
      const f = (x: number) => `${x.toFixed(0)} MiB`;
      const t = (x: number) => `${(x / 1000).toFixed(1)} s`;
      console.log(`${F} | ${f(res['one-pass']!.maxRssMiB)} | ${f(res.micro!.maxRssMiB)} | ${t(res['one-pass']!.ms)} | ${t(res.micro!.ms)}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (args[0] === '--child') await child();
else await parent();
