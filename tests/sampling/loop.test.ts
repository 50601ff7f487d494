/**
 * The sampling loops' contract with their caller, with a synthetic denoiser (no DiT): bad input gives clear
 * SORA82xx errors, progress is reported per step, cancellation stops between steps, the CFG batch layout is
 * [cond rows, uncond rows], noise is drawn only where upstream's can reach the result, and seeded runs are
 * reproducible.
 */
import { describe, expect, it } from 'vitest';
import { type Denoiser, type F32Tensor, type NoiseSource, SamplingError, cfgText, ditDenoiser, releaseSampler, sample, seededNoise } from '../../runtime/sampling/index.ts';

const SHAPE = [1, 2, 3, 2, 2];
const n = SHAPE.reduce((a, b) => a * b, 1);

/** A denoiser that returns 0.1·x for every output channel (2C channels), conditional rows shifted by +0.05. */
const toy: Denoiser = async (z) => {
  const [B2, C, ...rest] = z.shape as number[];
  const inner = rest.reduce((a, b) => a * b, 1);
  const out = new Float32Array(B2! * 2 * C! * inner);
  for (let b = 0; b < B2!; b++)
    for (let c = 0; c < 2 * C!; c++)
      for (let i = 0; i < inner; i++) out[(b * 2 * C! + c) * inner + i] = 0.1 * z.data[(b * C! + (c % C!)) * inner + i]! + (b < B2! / 2 ? 0.05 : 0);
  return { dtype: 'f32', shape: [B2!, 2 * C!, ...rest], data: out };
};

function countingNoise(inner: NoiseSource) {
  const steps: number[] = [];
  return {
    steps,
    src: { description: 'counting', initial: (s: readonly number[]) => inner.initial(s), step: (i: number, s: readonly number[]) => (steps.push(i), inner.step(i, s)) } as NoiseSource,
  };
}

const base = { latentShape: SHAPE, cfgScale: 7, noise: seededNoise(1), denoiser: toy };

describe('bad input', () => {
  it('steps <= 0, non-integer or above the diffusion steps', async () => {
    for (const steps of [0, -3, 1001, 2.5]) {
      await expect(sample('iddpm', { ...base, steps })).rejects.toMatchObject({ code: 'SORA8201' });
      await expect(sample('rflow', { ...base, steps })).rejects.toMatchObject({ code: 'SORA8201' });
    }
    await expect(sample('iddpm', { ...base, steps: 11, diffusionSteps: 10 })).rejects.toMatchObject({ code: 'SORA8201' });
  });
  it('a guidance scale that is not finite', async () => {
    for (const cfgScale of [Number.NaN, Infinity, -Infinity]) {
      await expect(sample('iddpm', { ...base, steps: 2, cfgScale })).rejects.toMatchObject({ code: 'SORA8202' });
      await expect(sample('rflow', { ...base, steps: 2, cfgScale })).rejects.toMatchObject({ code: 'SORA8202' });
    }
  });
  it('noise or z0 of another shape than the latent', async () => {
    const wrong: NoiseSource = { description: 'wrong', initial: async () => ({ dtype: 'f32', shape: [1, 2, 3, 2, 3], data: new Float32Array(36) }), step: async () => ({ dtype: 'f32', shape: [1, 2, 3, 2, 3], data: new Float32Array(36) }) };
    await expect(sample('iddpm', { ...base, steps: 2, noise: wrong })).rejects.toMatchObject({ code: 'SORA8204' });
    await expect(sample('rflow', { ...base, steps: 2, noise: wrong })).rejects.toMatchObject({ code: 'SORA8204' });
    const badStep: NoiseSource = { description: 'bad step', initial: (s) => seededNoise(1).initial(s), step: async () => ({ dtype: 'f32', shape: [2], data: new Float32Array(2) }) };
    await expect(sample('iddpm', { ...base, steps: 3, noise: badStep })).rejects.toMatchObject({ code: 'SORA8204', message: expect.stringContaining('step 0') });
  });
  it('a latent shape that is not [B, C, T, H, W]', async () => {
    await expect(sample('iddpm', { ...base, steps: 2, latentShape: [1, 2, 3] })).rejects.toMatchObject({ code: 'SORA8207' });
    await expect(sample('rflow', { ...base, steps: 2, latentShape: [1, 0, 3, 2, 2] })).rejects.toMatchObject({ code: 'SORA8207' });
  });
  it('a denoiser output of the wrong shape or dtype', async () => {
    const half: Denoiser = async (z) => ({ dtype: 'f32', shape: z.shape, data: z.data.slice() });
    await expect(sample('iddpm', { ...base, steps: 2, denoiser: half })).rejects.toMatchObject({ code: 'SORA8208' });
    await expect(sample('rflow', { ...base, steps: 2, denoiser: half })).rejects.toMatchObject({ code: 'SORA8208' });
  });
  it('cfg channel out of range, an IDDPM latent mask, bad RFLOW masks', async () => {
    await expect(sample('iddpm', { ...base, steps: 2, cfgChannel: 9 })).rejects.toMatchObject({ code: 'SORA8218' });
    await expect(sample('iddpm', { ...base, steps: 2, latentMask: {} })).rejects.toMatchObject({ code: 'SORA8215' });
    const m = (shape: number[], v: number[]): F32Tensor => ({ dtype: 'f32', shape, data: Float32Array.from(v) });
    await expect(sample('rflow', { ...base, steps: 2, latentMask: m([1, 2], [1, 1]) })).rejects.toMatchObject({ code: 'SORA8213' });
    await expect(sample('rflow', { ...base, steps: 2, latentMask: m([1, 3], [1, 1.5, 0]) })).rejects.toMatchObject({ code: 'SORA8213' });
  });
  it('errors are SamplingErrors with a hint', async () => {
    const e = await sample('rflow', { ...base, steps: 0 }).catch((x) => x);
    expect(e).toBeInstanceOf(SamplingError);
    expect(e.hint).toMatch(/steps/);
    expect(JSON.parse(JSON.stringify(e))).toMatchObject({ code: 'SORA8201' });
  });
});

describe('loop behaviour', () => {
  it('onStep(done, total) after every step; the denoiser sees [2B] rows and [2B] timesteps', async () => {
    for (const kind of ['iddpm', 'rflow'] as const) {
      const calls: [number, number][] = [];
      const seen: number[][] = [];
      const den: Denoiser = async (z, t, e) => (seen.push([z.shape[0]!, t.shape[0]!]), expect(e).toEqual({}), toy(z, t, e));
      await sample(kind, { ...base, latentShape: [2, 2, 3, 2, 2], steps: 4, denoiser: den, onStep: (d, t) => calls.push([d, t]) });
      expect(calls).toEqual([[1, 4], [2, 4], [3, 4], [4, 4]]);
      expect(seen).toEqual(Array(4).fill([4, 4]));
    }
  });
  it('an aborted signal stops before the next step', async () => {
    for (const kind of ['iddpm', 'rflow'] as const) {
      const ac = new AbortController();
      let steps = 0;
      const p = sample(kind, { ...base, steps: 5, signal: ac.signal, onStep: (d) => ((steps = d), d === 2 && ac.abort()) });
      await expect(p).rejects.toMatchObject({ code: 'SORA8214', message: expect.stringContaining('step 3 of 5') });
      expect(steps).toBe(2);
    }
  });
  it('IDDPM draws step noise for every step but the last (t = 0); RFLOW without a mask draws none', async () => {
    const a = countingNoise(seededNoise(3));
    await sample('iddpm', { ...base, steps: 5, noise: a.src });
    expect(a.steps).toEqual([0, 1, 2, 3]);
    const b = countingNoise(seededNoise(3));
    await sample('rflow', { ...base, steps: 5, noise: b.src });
    expect(b.steps).toEqual([]);
  });
  it('RFLOW with a mask re-noises a frame once, when its edit ratio·1000 reaches t, and passes x_mask', async () => {
    const c = countingNoise(seededNoise(3));
    const masks: number[][] = [];
    const den: Denoiser = async (z, t, e) => (masks.push([...e.xMask!.data]), toy(z, t, e));
    const mask: F32Tensor = { dtype: 'f32', shape: [1, 3], data: Float32Array.from([0, 0.5, 1]) };
    const z0 = await seededNoise(9).initial(SHAPE);
    const out = await sample('rflow', { ...base, steps: 4, noise: c.src, denoiser: den, latentMask: mask, z0 });
    // t = 1000, 750, 500, 250: frame 1 (ratio 0.5) becomes active at t = 500 (step 2) and is re-noised then
    expect(c.steps).toEqual([2]);
    expect(masks).toEqual([[0, 0, 1, 0, 0, 1], [0, 0, 1, 0, 0, 1], [0, 1, 1, 0, 1, 1], [0, 1, 1, 0, 1, 1]]);
    // frame 0 (ratio 0) is kept as given
    for (let c2 = 0; c2 < 2; c2++) for (let i = 0; i < 4; i++) expect(out.data[c2 * 12 + i]).toBe(z0.data[c2 * 12 + i]);
  });
  it('seeded runs are reproducible, and the seed matters', async () => {
    const r = (seed: number) => sample('iddpm', { ...base, steps: 6, noise: seededNoise(seed) }).then((x) => x.data);
    expect(await r(5)).toEqual(await r(5));
    expect(await r(5)).not.toEqual(await r(6));
    expect(n).toBe(24);
  });
  it('release defaults as options', async () => {
    expect(releaseSampler('v1.0')).toEqual({ kind: 'iddpm', options: { steps: 100, cfgScale: 7, cfgChannel: 3, numerics: 'v1.0' } });
    expect(releaseSampler('v1.1')).toMatchObject({ kind: 'iddpm', options: { steps: 100, cfgScale: 7, cfgChannel: 3, numerics: 'v1.1' } });
    expect(releaseSampler('v1.2')).toMatchObject({ kind: 'rflow', options: { steps: 30, cfgScale: 7, useTimestepTransform: true, release: 'v1.2', argDtype: 'bf16' } });
    expect(releaseSampler('v1.3')).toMatchObject({ kind: 'rflow', options: { steps: 30, cfgScale: 7.5, oscillationGuidance: true, flawFix: true, release: 'v1.3' } });
    expect(() => releaseSampler('v2.0' as never)).toThrow(expect.objectContaining({ code: 'SORA8219' }));
    await expect(sample('ddim' as never, base as never)).rejects.toMatchObject({ code: 'SORA8219' });
  });
});

describe('denoiser binding', () => {
  it('cfgText puts the prompts first and the null embedding (tiled) after', () => {
    const y: F32Tensor = { dtype: 'f32', shape: [2, 1, 1, 2], data: Float32Array.from([1, 2, 3, 4]) };
    const yNull: F32Tensor = { dtype: 'f32', shape: [1, 2], data: Float32Array.from([9, 8]) };
    expect([...cfgText(y, yNull).data]).toEqual([1, 2, 3, 4, 9, 8, 9, 8]);
    expect(() => cfgText(y, { dtype: 'f32', shape: [1, 3], data: new Float32Array(3) })).toThrow(expect.objectContaining({ code: 'SORA8209' }));
  });
  it('ditDenoiser feeds x, timestep, y, mask, x_mask and model args the graph has, and reads "output"', async () => {
    const fed: string[][] = [];
    const session = {
      async run(inputs: Record<string, { shape: readonly number[] }>) {
        fed.push(Object.keys(inputs).sort());
        return new Map([['output', { dtype: 'f32', shape: [2, 4, 1, 1, 1], data: new Float32Array(8) }]]);
      },
    };
    const y: F32Tensor = { dtype: 'f32', shape: [1, 1, 1, 2], data: Float32Array.from([1, 2]) };
    const d = ditDenoiser(session, { y, yNull: { dtype: 'f32', shape: [1, 2], data: new Float32Array(2) }, modelArgs: { fps: { dtype: 'f32', shape: [1], data: Float32Array.of(24) }, ar: { dtype: 'f32', shape: [1], data: Float32Array.of(1) } }, inputNames: ['x', 'timestep', 'y', 'fps', 'x_mask'] });
    await d({ dtype: 'f32', shape: [2, 2, 1, 1, 1], data: new Float32Array(4) }, { dtype: 'f32', shape: [2], data: new Float32Array(2) }, { xMask: { dtype: 'bool', shape: [2, 1], data: Uint8Array.of(1, 1) } });
    expect(fed).toEqual([['fps', 'timestep', 'x', 'x_mask', 'y']]);
    const broken = ditDenoiser({ run: async () => new Map() }, { y, yNull: { dtype: 'f32', shape: [1, 2], data: new Float32Array(2) } });
    await expect(broken({ dtype: 'f32', shape: [2, 2, 1, 1, 1], data: new Float32Array(4) }, { dtype: 'f32', shape: [2], data: new Float32Array(2) }, {})).rejects.toMatchObject({ code: 'SORA8208' });
  });
});
