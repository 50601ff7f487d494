/**
 * Sampler parity with the real upstream code: sorac's IDDPM / RFLOW loops (runtime/sampling/) drive the compiled DiT
 * (one onnxruntime session reused across steps) with the noise upstream drew, and must reproduce upstream's final
 * latents and the frames upstream's VAE decoded from them, within 1e-4 max abs (f32), after >= 10 steps.
 * The timesteps the DiT is called with must equal upstream's exactly, step by step.
 * Cases: tests/fixtures/golden-sampler/ (harness/make_sampler_goldens.py; see its meta.json files).
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, describe, expect, it } from 'vitest';
import type { LoadedModel } from '../../index.ts';
import { type Denoiser, type F32Tensor, type I64Tensor, ditDenoiser, fileNoise, sample } from '../../runtime/sampling/index.ts';
import { GOLDEN, ROOT, asF32, compileOk, goldenKwargs, load, maxAbs, maxAbsValue, meta, pipelineStore, readTensors } from './golden.ts';

const TOL = 1e-4;
const opened: LoadedModel[] = [];
afterAll(async () => {
  for (const l of opened) await l.close();
});

const DIT = { STDiT: 'examples/stdit.sora', STDiT2: 'examples/stdit2.sora', STDiT3: 'examples/stdit3.sora' } as const;

async function loadDit(caseName: string) {
  const m = meta(caseName);
  const kw = Object.values(m.dit.constructor_kwargs)[0] as Record<string, unknown>;
  const model = compileOk(DIT[m.dit.class as keyof typeof DIT], kw);
  const loaded = await load(model, join(ROOT, caseName, 'model.safetensors'), { device: 'cpu' });
  opened.push(loaded);
  const yEmb = loaded.store.tensors.get('y_embedder.y_embedding')!;
  const b = await yEmb.read();
  const yNull: F32Tensor = { dtype: 'f32', shape: [...yEmb.shape], data: new Float32Array(Uint8Array.from(b).buffer) };
  return { m, loaded, yNull };
}

interface Traced {
  denoiser: Denoiser;
  ts: Float32Array[];
  xs: Float32Array[];
  ditMs: number;
}

/** Wrap a denoiser to record the timesteps / latents it is called with and the time spent in the DiT. */
function traced(inner: Denoiser, B: number): Traced {
  const r: Traced = { ts: [], xs: [], ditMs: 0, denoiser: async () => { throw new Error('unset'); } };
  r.denoiser = async (z, t, e) => {
    r.ts.push(t.data.slice());
    r.xs.push(z.data.slice(0, z.data.length / 2));
    const t0 = performance.now();
    const out = await inner(z, t, e);
    r.ditMs += performance.now() - t0;
    expect(z.shape[0]).toBe(2 * B);
    return out;
  };
  return r;
}

async function decodeFrames(caseName: string, m: any, latents: F32Tensor, numFrames: number): Promise<Float32Array> {
  if (m.tag === 'v1.2.0') {
    const sd = goldenKwargs('sd_vae');
    const tv = goldenKwargs('vae_temporal');
    const model = compileOk('examples/vae_pipeline_v12.sora', {
      vae_2d_block_out_channels: sd.block_out_channels,
      vae_2d_layers_per_block: sd.layers_per_block,
      vae_2d_norm_num_groups: sd.norm_num_groups,
      vae_temporal_filters: tv.filters,
      vae_temporal_num_res_blocks: tv.num_res_blocks,
      vae_temporal_num_groups: tv.num_groups,
    });
    const loaded = await load(model, await pipelineStore(m.vae.pipeline_shift, m.vae.pipeline_scale), { device: 'cpu' });
    opened.push(loaded);
    const s = await loaded.session('decode');
    const out = await s.run({ z: latents, num_frames: { dtype: 'i64', shape: [], data: BigInt64Array.of(BigInt(numFrames)) } as I64Tensor });
    return out.get('x')!.data as Float32Array;
  }
  const model = compileOk('examples/sd_vae.sora', goldenKwargs('sd_vae'));
  const loaded = await load(model, join(GOLDEN, 'sd_vae', 'a', 'model.safetensors'), { device: 'cpu' });
  opened.push(loaded);
  const s = await loaded.session('decode_video');
  return (await s.run({ z: latents })).get('x')!.data as Float32Array;
}

const RUNS: [string, string][] = [
  ['iddpm_v100', 't2v'],
  ['iddpm_v110', 't2v'],
  ['rflow_v120', 't2v'],
  ['rflow_v120', 'masked'],
  ['rflow_v120', 'discrete_b2'],
];

describe('samplers reproduce the upstream Open-Sora sampling loops (real code, recorded noise)', () => {
  for (const [caseName, runName] of RUNS) {
    it(`${caseName}/${runName}: final latents and decoded frames within 1e-4 of upstream`, async () => {
      const { m, loaded, yNull } = await loadDit(caseName);
      const run = m.runs.find((r: any) => r.name === runName);
      const dir = join(ROOT, caseName);
      const inputs = await readTensors(join(dir, `${runName}.inputs.safetensors`));
      const ref = await readTensors(join(dir, `${runName}.outputs.safetensors`));
      const noise = await fileNoise(join(dir, `${runName}.noise.safetensors`));
      const latentMask = inputs.get('latent_mask') as F32Tensor | undefined;
      const absent = m.dit.class === 'STDiT' ? [] : latentMask ? [] : ['x_mask'];
      const session = await loaded.session('forward', absent);
      const names = session.inputs.map((i) => i.name);
      const modelArgs: Record<string, F32Tensor> = {};
      for (const k of ['height', 'width', 'num_frames', 'ar', 'fps']) if (inputs.has(k)) modelArgs[k] = asF32(inputs.get(k), k);
      const dit = ditDenoiser(session, { y: asF32(inputs.get('y'), 'y'), yNull, mask: inputs.get('mask') as I64Tensor, modelArgs, inputNames: names });
      const B: number = run.B;
      const tr = traced(dit, B);
      const steps: number = run.steps;
      let progress = 0;
      const t0 = performance.now();
      const latents = m.tag === 'v1.2.0'
        ? await sample('rflow', {
            latentShape: run.latent_shape, steps, cfgScale: run.cfg_scale, useDiscreteTimesteps: run.use_discrete_timesteps,
            useTimestepTransform: run.use_timestep_transform, release: 'v1.2',
            transformInputs: { height: [...asF32(inputs.get('height')).data], width: [...asF32(inputs.get('width')).data], numFrames: [...asF32(inputs.get('num_frames')).data] },
            ...(latentMask ? { latentMask } : {}), noise, denoiser: tr.denoiser, onStep: (d) => (progress = d),
          })
        : await sample('iddpm', {
            latentShape: run.latent_shape, steps, cfgScale: run.cfg_scale, cfgChannel: run.cfg_channel,
            numerics: m.tag === 'v1.0.0' ? 'v1.0' : 'v1.1', noise, denoiser: tr.denoiser, onStep: (d) => (progress = d),
          });
      const totalMs = performance.now() - t0;
      await noise.close?.();
      expect(progress).toBe(steps);
      // the DiT saw exactly upstream's timesteps, step by step
      const refT = asF32(ref.get('trace.t'), 'trace.t');
      expect(tr.ts.length).toBe(steps);
      for (let i = 0; i < steps; i++) expect([...tr.ts[i]!]).toEqual([...refT.data.subarray(i * 2 * B, (i + 1) * 2 * B)]);
      // latents fed to the DiT per step (where recorded)
      const refX = ref.has('trace.x') ? asF32(ref.get('trace.x'), 'trace.x') : null;
      const per = refX ? refX.data.length / steps : 0;
      const stepErr = refX ? tr.xs.map((x, i) => maxAbs(x, refX.data.subarray(i * per, (i + 1) * per))) : [0];
      const stepRel = refX ? tr.xs.map((_, i) => stepErr[i]! / Math.max(1, maxAbsValue(refX.data.subarray(i * per, (i + 1) * per)))) : [0];
      const refLat = asF32(ref.get('latents'), 'latents');
      const eLat = maxAbs(latents.data, refLat.data);
      let eFr: number | null = null;
      if (ref.has('frames')) {
        const frames = await decodeFrames(caseName, m, latents, run.request.num_frames);
        eFr = maxAbs(frames, asF32(ref.get('frames')).data);
      }
      const hostMsPerStep = (totalMs - tr.ditMs) / steps;
      console.log(`${caseName}/${runName}: latents max|err| ${eLat.toExponential(2)} (max|ref| ${maxAbsValue(refLat.data).toFixed(2)}), frames max|err| ${eFr === null ? '-' : eFr.toExponential(2)}; per-step DiT input err max ${Math.max(...stepErr).toExponential(2)} (relative ${Math.max(...stepRel).toExponential(2)}); host ${hostMsPerStep.toFixed(2)} ms/step vs DiT ${(tr.ditMs / steps).toFixed(2)} ms/step`);
      expect(eLat).toBeLessThanOrEqual(TOL);
      if (eFr !== null) expect(eFr).toBeLessThanOrEqual(TOL);
      // intermediate latents (up to |x| ~ 13 mid-trajectory in the IDDPM cases): relative to their size
      expect(Math.max(...stepRel)).toBeLessThanOrEqual(TOL);
    });
  }
});
