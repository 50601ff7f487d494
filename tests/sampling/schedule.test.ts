/**
 * Pure pieces of the samplers against numbers computed by the upstream functions (tests/fixtures/golden-sampler/
 * units.json, written by harness/make_sampler_goldens.py): beta schedules, space_timesteps (all string forms and
 * its errors), the respaced IDDPM schedule arrays at v1.0 (float64 numpy) and v1.1 (float32 torch), the v1.2 and
 * v1.3 timestep transforms, v1.3 oscillation guidance and the guidance flaw fix.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type IddpmSchedule, betaSchedule, fixGuidanceFlaw, iddpmSchedule, oscillationScale, rflowTimesteps, spaceTimesteps, timestepTransform } from '../../runtime/sampling/index.ts';
import { ROOT } from './golden.ts';

const U = JSON.parse(readFileSync(join(ROOT, 'units.json'), 'utf8'));

/** max |a - b| / max(|b|, tiny) over arrays */
function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!) / Math.max(Math.abs(b[i]!), 1e-30));
  return m;
}
const ulpsF32 = (a: number, b: number) => Math.abs(a - b) / (2 ** (Math.floor(Math.log2(Math.max(Math.abs(b), 1e-38))) - 23));

describe('beta schedules (get_named_beta_schedule)', () => {
  it('v1.0 linear (numpy.linspace, float64) is bit-identical at 1000 and 250 steps', () => {
    expect([...betaSchedule('linear', 1000, 'v1.0')]).toEqual(U['v1.0.0'].linear_1000);
    expect([...betaSchedule('linear', 250, 'v1.0')]).toEqual(U['v1.0.0'].linear_250);
  });
  it('v1.1 linear (torch.linspace float64, filled from both ends) is bit-identical, and differs from numpy in places', () => {
    const t = [...betaSchedule('linear', 1000, 'v1.1')];
    expect(t).toEqual(U['v1.1.0'].linear_1000);
    expect([...betaSchedule('linear', 250, 'v1.1')]).toEqual(U['v1.1.0'].linear_250);
    expect(t).not.toEqual(U['v1.0.0'].linear_1000);
  });
  it('v1.0 squaredcos_cap_v2 within 1e-15 relative; v1.1 refuses it (upstream NameError)', () => {
    expect(maxRel(betaSchedule('squaredcos_cap_v2', 1000, 'v1.0'), U['v1.0.0'].cosine_1000)).toBeLessThanOrEqual(1e-12);
    expect(U['v1.1.0'].cosine_error).toMatch(/matorch/);
    expect(() => betaSchedule('squaredcos_cap_v2', 1000, 'v1.1')).toThrow(expect.objectContaining({ code: 'SORA8212' }));
    expect(() => betaSchedule('quad' as never, 1000)).toThrow(expect.objectContaining({ code: 'SORA8212' }));
  });
});

describe('space_timesteps (respace.py)', () => {
  it('matches upstream for every string form', () => {
    for (const [s, want] of Object.entries(U['v1.0.0'].space_timesteps as Record<string, number[]>)) expect(spaceTimesteps(1000, s), s).toEqual(want);
    for (const [s, want] of Object.entries(U['v1.0.0'].space_timesteps_250 as Record<string, number[]>)) expect(spaceTimesteps(250, s), s).toEqual(want);
    expect(spaceTimesteps(1000, [10, 10, 10])).toEqual(U['v1.0.0'].space_timesteps['10,10,10']);
  });
  it('raises where upstream raises, with its message', () => {
    for (const [s, msg] of Object.entries(U['v1.0.0'].space_timesteps_errors as Record<string, string | null>)) {
      if (msg === null) expect(() => spaceTimesteps(1000, s)).not.toThrow();
      else expect(() => spaceTimesteps(1000, s)).toThrow(expect.objectContaining({ code: 'SORA8211', message: msg }));
    }
    expect(() => spaceTimesteps(1000, 'ddim999')).toThrow(expect.objectContaining({ code: 'SORA8211' }));
    expect(() => spaceTimesteps(1000, 'fast')).toThrow(expect.objectContaining({ code: 'SORA8210' }));
    expect(() => spaceTimesteps(1000, '10,x')).toThrow(expect.objectContaining({ code: 'SORA8210' }));
  });
});

const ARRAYS: [keyof IddpmSchedule, string][] = [
  ['betas', 'betas'], ['alphasCumprod', 'alphas_cumprod'], ['alphasCumprodPrev', 'alphas_cumprod_prev'],
  ['sqrtRecipAlphasCumprod', 'sqrt_recip_alphas_cumprod'], ['sqrtRecipm1AlphasCumprod', 'sqrt_recipm1_alphas_cumprod'],
  ['posteriorVariance', 'posterior_variance'], ['posteriorLogVarianceClipped', 'posterior_log_variance_clipped'],
  ['posteriorMeanCoef1', 'posterior_mean_coef1'], ['posteriorMeanCoef2', 'posterior_mean_coef2'], ['logBetas', 'log_betas'],
];

describe('respaced IDDPM schedule (IDDPM(num_sampling_steps=100))', () => {
  it('v1.0 (float64 numpy): timestep map exact, arrays within 4 float64 ulps (sqrt/log rounding)', () => {
    const s = iddpmSchedule({ steps: 100, numerics: 'v1.0' });
    const ref = U['v1.0.0'].iddpm_100;
    expect(s.timestepMap).toEqual(ref.timestep_map);
    for (const [k, r] of ARRAYS) {
      expect(ref[r].dtype, r).toBe('float64');
      expect(maxRel(s[k] as Float64Array, ref[r].values), r).toBeLessThanOrEqual(1e-15);
    }
    // the values _extract_into_tensor hands to float32 math are identical
    for (const [k, r] of ARRAYS) expect([...(s[k] as Float64Array)].map(Math.fround), r).toEqual(ref[r].values.map(Math.fround));
  });
  it('v1.1 (float32 torch after FloatTensor(new_betas)): every array within 1 float32 ulp, most bit-identical', () => {
    const s = iddpmSchedule({ steps: 100, numerics: 'v1.1' });
    const ref = U['v1.1.0'].iddpm_100;
    expect(s.timestepMap).toEqual(ref.timestep_map);
    let exact = 0;
    let total = 0;
    for (const [k, r] of ARRAYS) {
      expect(ref[r].dtype, r).toBe('float32');
      const a = s[k] as Float64Array;
      for (let i = 0; i < a.length; i++) {
        expect(ulpsF32(a[i]!, ref[r].values[i]), `${r}[${i}]`).toBeLessThanOrEqual(1);
        exact += a[i] === ref[r].values[i] ? 1 : 0;
        total++;
      }
    }
    console.log(`v1.1 schedule: ${exact}/${total} values bit-identical`);
    expect(exact / total).toBeGreaterThan(0.95);
    // betas and the cumulative products, the inputs of everything else, are bit-identical
    expect([...s.betas]).toEqual(ref.betas.values);
    expect([...s.alphasCumprod]).toEqual(ref.alphas_cumprod.values);
  });
  it('steps out of range are refused', () => {
    for (const steps of [0, -1, 1001, 2.5, Number.NaN]) expect(() => iddpmSchedule({ steps }), String(steps)).toThrow(expect.objectContaining({ code: 'SORA8201' }));
  });
});

describe('RFLOW timesteps and timestep_transform', () => {
  it('v1.2 transform matches upstream (float32) for several resolutions and frame counts', () => {
    for (const row of U['v1.2.0'].timestep_transform) {
      const got = row.t.map((t: number) => timestepTransform([Math.fround(t)], { height: [row.height], width: [row.width], numFrames: [row.num_frames] }, { release: 'v1.2' })[0]);
      for (let i = 0; i < got.length; i++) {
        // null: upstream gives NaN (16 frames: 16 div 17 · 5 = 0 frames, ratio 0, 0/0 at t = 1000)
        if (row.out[i] === null) expect(got[i]).toBeNaN();
        else expect(ulpsF32(got[i], row.out[i]), `${row.height}x${row.width}x${row.num_frames} t=${row.t[i]}`).toBeLessThanOrEqual(1);
      }
    }
  });
  it('v1.3 transform ((n-1) div 4 frames, scale on videos only, scale_temporal) matches upstream', () => {
    for (const row of U['v1.3'].timestep_transform) {
      const got = row.t.map((t: number) => timestepTransform([Math.fround(t)], { height: [row.height], width: [row.width], numFrames: [row.num_frames] }, { release: 'v1.3', scale: row.scale, scaleTemporal: row.scale_temporal })[0]);
      for (let i = 0; i < got.length; i++) expect(ulpsF32(got[i], row.out[i]), JSON.stringify({ ...row, t: row.t[i], out: undefined })).toBeLessThanOrEqual(1);
    }
  });
  it('the untransformed timesteps are (1 - i/n)·1000 in float32; discrete ones round half to even', () => {
    expect(rflowTimesteps({ steps: 10, batch: 1 }).map((t) => t[0])).toEqual(U['v1.2.0'].timesteps_10.map(Math.fround));
    expect(rflowTimesteps({ steps: 16, batch: 1, useDiscreteTimesteps: true })[1]).toEqual([938]);
    expect(rflowTimesteps({ steps: 3, batch: 2, useDiscreteTimesteps: true })).toEqual([[1000, 1000], [667, 667], [333, 333]]);
  });
  it('v1.3 oscillation guidance and flaw fix match upstream', () => {
    expect(Array.from({ length: 30 }, (_, i) => oscillationScale(7.5, i, 10))).toEqual(U['v1.3'].oscillation_gs[0]);
    expect(Array.from({ length: 8 }, (_, i) => oscillationScale(4.0, i, 3))).toEqual(U['v1.3'].oscillation_gs[1]);
    const f = U['v1.3'].flaw_fix;
    const v = Float32Array.from(f.v_pred);
    fixGuidanceFlaw(v, Float32Array.from(f.pred_cond), f.shape[0]);
    for (let i = 0; i < v.length; i++) expect(Math.abs(v[i]! - f.out[i])).toBeLessThanOrEqual(1e-6);
  });
  it('a transform that gives no finite timestep (v1.2 at fewer than 17 frames) is refused by the sampler', () => {
    expect(() => rflowTimesteps({ steps: 10, batch: 1, useTimestepTransform: true, transformInputs: { height: [480], width: [854], numFrames: [16] } })).toThrow(expect.objectContaining({ code: 'SORA8209' }));
  });
  it('bad steps and missing transform inputs are refused', () => {
    for (const steps of [0, 1001, 1.5]) expect(() => rflowTimesteps({ steps, batch: 1 })).toThrow(expect.objectContaining({ code: 'SORA8201' }));
    expect(() => rflowTimesteps({ steps: 10, batch: 1, useTimestepTransform: true })).toThrow(expect.objectContaining({ code: 'SORA8209' }));
    expect(() => timestepTransform([500], { height: [0], width: [64], numFrames: [17] })).toThrow(expect.objectContaining({ code: 'SORA8209' }));
  });
});
