/**
 * Per-release request conditioning: latent sizes (get_latent_size of each release's VAE), the size conditioning
 * scripts/inference.py passes (values and the bf16 rounding of the released configs), the score text appended to
 * prompts, and the release defaults read from the inference configs.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { IMG_FPS, RELEASE_DEFAULTS, latentShape, latentSize, modelArgs, promptWithScores, pyFixed1, roundBf16, roundF16, timestepTransform } from '../../runtime/sampling/index.ts';
import { ROOT } from './golden.ts';

describe('latent sizes', () => {
  it('v1.0/v1.1 SD VAE: [T, H/8, W/8]', () => {
    expect(latentSize('v1.0', { height: 256, width: 256, numFrames: 16 })).toEqual([16, 32, 32]);
    expect(latentSize('v1.1', { height: 240, width: 426, numFrames: 16 })).toEqual([16, 30, 53]);
    expect(() => latentSize('v1.0', { height: 250, width: 256, numFrames: 16 })).toThrow(expect.objectContaining({ code: 'SORA8216' }));
  });
  it('v1.2 pipeline: 5·(T div 17) + ceil((T mod 17)/4) (formats.md §1.3: 51 -> 15, 102 -> 30, 1 -> 1)', () => {
    expect(latentSize('v1.2', { height: 240, width: 426, numFrames: 51 })).toEqual([15, 30, 53]);
    expect(latentSize('v1.2', { height: 720, width: 1280, numFrames: 102 })).toEqual([30, 90, 160]);
    expect(latentSize('v1.2', { height: 64, width: 64, numFrames: 1 })[0]).toBe(1);
    expect(latentSize('v1.2', { height: 64, width: 64, numFrames: 39 })[0]).toBe(12);
    expect(latentSize('v1.2', { height: 64, width: 80, numFrames: 17 })).toEqual([5, 8, 10]);
  });
  it('v1.3 VAE (temporal overlap): (T-1) div 16 · 5, ceil(H/8)', () => {
    expect(latentSize('v1.3', { height: 720, width: 1280, numFrames: 113 })).toEqual([35, 90, 160]);
    expect(latentSize('v1.3', { height: 241, width: 100, numFrames: 1 })).toEqual([1, 31, 13]);
    expect(() => latentSize('v1.3', { height: 64, width: 64, numFrames: 9 })).toThrow(expect.objectContaining({ code: 'SORA8216' }));
    expect(latentShape('v1.3', { height: 64, width: 64, numFrames: 17, batch: 2 })).toEqual([2, 16, 5, 8, 8]);
  });
  it('bad requests', () => {
    for (const r of [{ height: 0, width: 8, numFrames: 1 }, { height: 8, width: 8.5, numFrames: 1 }, { height: 8, width: 8, numFrames: -1 }, { height: 8, width: 8, numFrames: 1, batch: 0 }])
      expect(() => latentSize('v1.2', r)).toThrow(expect.objectContaining({ code: 'SORA8216' }));
    expect(() => latentSize('v9' as never, { height: 8, width: 8, numFrames: 1 })).toThrow(expect.objectContaining({ code: 'SORA8219' }));
  });
});

describe('model args (prepare_multi_resolution_info)', () => {
  it('v1.0 passes none; v1.1+ pass height/width/num_frames/ar/fps per prompt', () => {
    expect(modelArgs('v1.0', { height: 256, width: 256, numFrames: 16 })).toEqual({});
    const a = modelArgs('v1.2', { height: 240, width: 320, numFrames: 51, batch: 2 }, { precision: 'f32' });
    expect(Object.keys(a).sort()).toEqual(['ar', 'fps', 'height', 'num_frames', 'width']);
    expect([...a.height!.data]).toEqual([240, 240]);
    expect([...a.ar!.data]).toEqual([0.75, 0.75]);
    expect([...a.fps!.data]).toEqual([24, 24]);
    expect([...modelArgs('v1.1', { height: 240, width: 320, numFrames: 1 }).fps!.data]).toEqual([IMG_FPS]);
    expect([...modelArgs('v1.2', { height: 240, width: 320, numFrames: 51, fps: 30 }).fps!.data]).toEqual([30]);
  });
  it("'script' precision rounds as the released configs' bf16 tensors (values from torch: 854 -> 856, 480/854 -> 0.5625)", () => {
    const a = modelArgs('v1.1', { height: 480, width: 854, numFrames: 16 });
    expect(a.width!.data[0]).toBe(856);
    expect(a.ar!.data[0]).toBe(0.5625);
    expect(a.height!.data[0]).toBe(480);
    const b = modelArgs('v1.2', { height: 240, width: 426, numFrames: 51 });
    expect([b.width!.data[0], b.ar!.data[0]]).toEqual([426, 0.5625]);
    expect(modelArgs('v1.1', { height: 480, width: 854, numFrames: 16 }, { precision: 'f32' }).width!.data[0]).toBe(854);
    expect(roundBf16(1 + 2 ** -8)).toBe(1);
    expect(roundBf16(1 + 3 * 2 ** -9)).toBe(1 + 2 ** -7);
    expect(roundF16(2049)).toBe(2048);
    expect(roundF16(2051)).toBe(2052);
    expect(roundF16(1 / 3)).toBe(0.333251953125);
  });
  it('the v1.2 transform on bf16 args (the script tensors) matches upstream run on bf16 tensors', () => {
    const U = JSON.parse(readFileSync(join(ROOT, 'units.json'), 'utf8'));
    let differs = 0;
    for (const row of U['v1.2.0'].timestep_transform_bf16_args) {
      const inp = { height: [roundBf16(row.height)], width: [roundBf16(row.width)], numFrames: [roundBf16(row.num_frames)] };
      row.t.forEach((t: number, i: number) => {
        const got = timestepTransform([Math.fround(t)], inp, { release: 'v1.2', argDtype: 'bf16' })[0]!;
        if (row.out[i] === null) expect(got).toBeNaN();
        else expect(got, `${row.height}x${row.width}x${row.num_frames} t=${t}`).toBe(row.out[i]);
        const f32 = timestepTransform([Math.fround(t)], { height: [row.height], width: [row.width], numFrames: [row.num_frames] }, { release: 'v1.2' })[0]!;
        if (row.out[i] !== null && f32 !== row.out[i]) differs++;
      });
    }
    expect(differs).toBeGreaterThan(0);
  });
  it('the v1.2 transform on bf16 args computes its ratio in bf16', () => {
    const inp = { height: [480], width: [854], numFrames: [51] };
    const f = timestepTransform([500], inp, { release: 'v1.2' })[0]!;
    const b = timestepTransform([500], { ...inp, width: [856] }, { release: 'v1.2', argDtype: 'bf16' })[0]!;
    expect(f).not.toBe(b);
    expect(Math.abs(f - b)).toBeLessThan(2);
  });
});

describe('prompt score text (append_score_to_prompts)', () => {
  it('v1.2: " aesthetic score: 6.5." (one decimal, Python rounding), motion and camera', () => {
    expect(promptWithScores('v1.2', 'a cat', { aes: RELEASE_DEFAULTS['v1.2'].aes })).toBe('a cat aesthetic score: 6.5.');
    expect(promptWithScores('v1.2', 'a cat', { aes: 7, flow: 4.25, cameraMotion: 'pan right' })).toBe('a cat aesthetic score: 7.0. motion score: 4.2. camera motion: pan right.');
    expect(promptWithScores('v1.2', 'a cat aesthetic score: 5.0.', { aes: 6.5 })).toBe('a cat aesthetic score: 5.0.');
    expect(pyFixed1(0.25)).toBe('0.2');
    expect(pyFixed1(0.35)).toBe('0.3'); // 0.35 is 0.34999... in binary
    expect(pyFixed1(6.75)).toBe('6.8');
    expect(pyFixed1(6.25)).toBe('6.2');
    expect(pyFixed1(0.75)).toBe('0.8');
  });
  it('v1.3: words from transform_aes / transform_motion', () => {
    expect(promptWithScores('v1.3', 'a cat', { aes: 7.0 })).toBe('a cat The aesthetic score is excellent.');
    expect(promptWithScores('v1.3', 'a cat', { aes: 5.2, flow: 0.4 })).toBe('a cat The aesthetic score is fair. The motion strength is very low.');
    expect(promptWithScores('v1.3', 'a cat', { flow: 25 })).toBe('a cat The motion strength is extremely high.');
    expect(promptWithScores('v1.3', 'a cat', { aes: 'stunning' })).toBe('a cat The aesthetic score is stunning.');
  });
  it('v1.0/v1.1 append nothing', () => {
    expect(promptWithScores('v1.1', 'a cat', { aes: 6.5 })).toBe('a cat');
  });
});

describe('release defaults (configs/*/inference)', () => {
  it('steps, guidance, sampler', () => {
    expect(RELEASE_DEFAULTS['v1.0']).toMatchObject({ sampler: 'iddpm', steps: 100, cfgScale: 7, cfgChannel: 3 });
    expect(RELEASE_DEFAULTS['v1.1']).toMatchObject({ sampler: 'iddpm', steps: 100, cfgScale: 7, cfgChannel: 3 });
    expect(RELEASE_DEFAULTS['v1.2']).toMatchObject({ sampler: 'rflow', steps: 30, cfgScale: 7, useTimestepTransform: true, aes: 6.5 });
    expect(RELEASE_DEFAULTS['v1.3']).toMatchObject({ sampler: 'rflow', steps: 30, cfgScale: 7.5, useTimestepTransform: true, oscillationGuidance: true, flawFix: true });
  });
});
