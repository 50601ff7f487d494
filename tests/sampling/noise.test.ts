/**
 * sorac's seeded noise: Philox4x32-10 against the Random123 known-answer vectors, Box-Muller with the
 * deterministic ln/sin/cos against Math's, fixed first values for a seed (regression: a change here changes every
 * seeded video), distribution sanity over 1e6 draws, independence of streams; and the noise file reader.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fileNoise, philox4x32, philoxNormals, seededNoise } from '../../runtime/sampling/index.ts';
import { detLog, detSinCos2Pi } from '../../runtime/sampling/noise.ts';
import { ROOT } from './golden.ts';

const hex = (a: Uint32Array) => [...a].map((x) => x.toString(16).padStart(8, '0'));

describe('Philox4x32-10', () => {
  it('matches the Random123 known-answer vectors (kat_vectors)', () => {
    expect(hex(philox4x32([0, 0, 0, 0], [0, 0]))).toEqual(['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']);
    expect(hex(philox4x32([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff]))).toEqual(['408f276d', '41c83b0e', 'a20bc7c6', '6d5451fd']);
    expect(hex(philox4x32([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]))).toEqual(['d16cfe09', '94fdcceb', '5001e420', '24126ea1']);
  });
});

describe('deterministic elementary functions', () => {
  it('ln and sin/cos(2πv) agree with Math to ~1 double ulp on the generator grid', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (k) => {
        const u = (k + 1) * 2 ** -32;
        expect(Math.abs(detLog(u) - Math.log(u))).toBeLessThanOrEqual(4e-16 * Math.max(1, Math.abs(Math.log(u))));
        const v = k * 2 ** -32;
        const [s, c] = detSinCos2Pi(v);
        expect(Math.abs(s - Math.sin(2 * Math.PI * v))).toBeLessThanOrEqual(1e-15);
        expect(Math.abs(c - Math.cos(2 * Math.PI * v))).toBeLessThanOrEqual(1e-15);
      }),
      { numRuns: 2000 },
    );
    expect(detLog(1)).toBe(0);
    expect(detLog(2 ** -32)).toBeCloseTo(-32 * Math.LN2, 14);
  });
});

describe('seeded noise', () => {
  it('seed 42 gives fixed first values (bytes), whichever way the seed is passed', async () => {
    const v = philoxNormals(42, 0, 8);
    expect([...new Uint32Array(v.buffer)].map((x) => x.toString(16))).toEqual(['bf785e5c', '3e46ace8', 'bf9e28d2', '3ff6433b', 'bd95e030', '3e0e7a0f', 'bf8da733', '3ea742fd']);
    expect(philoxNormals(42n, 0, 8)).toEqual(v);
    const src = seededNoise(42);
    expect((await src.initial([1, 2, 1, 2, 2])).data).toEqual(v);
    expect((await src.step(0, [1, 2, 1, 2, 2])).data).toEqual(philoxNormals(42, 1, 8));
    // a prefix is a prefix: the first values do not depend on the tensor size
    expect(philoxNormals(42, 0, 3)).toEqual(v.subarray(0, 3));
    expect([...new Uint32Array(philoxNormals(7n, 3, 4).buffer)].map((x) => x.toString(16))).toEqual(['3f3a9824', '3f37c313', 'bfc58916', 'bf8f1a93']);
  });

  it('1e6 draws: mean ~ 0, std ~ 1, tails and symmetry of a standard normal', () => {
    const n = 1_000_000;
    const x = philoxNormals(20260101n, 5, n);
    let s = 0;
    let s2 = 0;
    let s4 = 0;
    let over2 = 0;
    let neg = 0;
    for (const v of x) {
      s += v;
      s2 += v * v;
      s4 += v ** 4;
      if (Math.abs(v) > 2) over2++;
      if (v < 0) neg++;
    }
    const mean = s / n;
    const std = Math.sqrt(s2 / n - mean * mean);
    // 5-sigma bounds: se(mean) = 1e-3, se(std) ~ 7e-4, se(kurtosis) ~ 5e-3, P(|z| > 2) = 0.0455 (se 2e-4)
    expect(Math.abs(mean)).toBeLessThan(5e-3);
    expect(Math.abs(std - 1)).toBeLessThan(3.5e-3);
    expect(Math.abs(s4 / n - 3)).toBeLessThan(0.025);
    expect(Math.abs(over2 / n - 0.0455)).toBeLessThan(1e-3);
    expect(Math.abs(neg / n - 0.5)).toBeLessThan(2.5e-3);
  });

  it('streams and seeds are independent (correlation ~ 0), and different', () => {
    const n = 200_000;
    const corr = (a: Float32Array, b: Float32Array) => {
      let sab = 0;
      let saa = 0;
      let sbb = 0;
      for (let i = 0; i < Math.min(a.length, b.length); i++) {
        sab += a[i]! * b[i]!;
        saa += a[i]! ** 2;
        sbb += b[i]! ** 2;
      }
      return sab / Math.sqrt(saa * sbb);
    };
    const a = philoxNormals(1, 0, n);
    for (const b of [philoxNormals(1, 1, n), philoxNormals(2, 0, n), philoxNormals(1n << 32n, 0, n), philoxNormals(1, 0xffffffff, n)]) {
      expect(Math.abs(corr(a, b))).toBeLessThan(0.0115); // 5 / sqrt(n)
      expect(b).not.toEqual(a);
    }
    // neighbouring elements within a stream are uncorrelated too
    expect(Math.abs(corr(a.subarray(0, n - 1) as Float32Array, a.subarray(1) as Float32Array))).toBeLessThan(0.0115);
  });

  it('refuses seeds that are not integers in [0, 2^64)', () => {
    for (const s of [-1, 1.5, Number.NaN, 2 ** 60, -1n, 1n << 64n]) expect(() => seededNoise(s as number | bigint), String(s)).toThrow(expect.objectContaining({ code: 'SORA8217' }));
  });
});

describe('noise files', () => {
  const file = join(ROOT, 'iddpm_v100', 't2v.noise.safetensors');
  it('reads init and step.<i> of the latent shape', async () => {
    const src = await fileNoise(file);
    const shape = [1, 4, 4, 8, 8];
    expect((await src.initial(shape)).data.length).toBe(1024);
    expect((await src.step(8, shape)).shape).toEqual(shape);
    await src.close?.();
  });
  it('a missing step, a wrong shape, a missing or non-safetensors file: clear errors', async () => {
    const src = await fileNoise(file);
    await expect(src.step(10, [1, 4, 4, 8, 8])).rejects.toMatchObject({ code: 'SORA8203', message: expect.stringContaining('"step.10"') });
    await expect(src.initial([1, 4, 4, 8, 9])).rejects.toMatchObject({ code: 'SORA8204', message: expect.stringContaining('[1, 4, 4, 8, 8]') });
    await src.close?.();
    await expect(fileNoise(join(ROOT, 'nope.safetensors'))).rejects.toMatchObject({ code: 'SORA8206' });
    const bad = join(mkdtempSync(join(tmpdir(), 'sorac-noise-')), 'bad.safetensors');
    writeFileSync(bad, 'not a safetensors file');
    await expect(fileNoise(bad)).rejects.toMatchObject({ code: 'SORA8206' });
  });
});
