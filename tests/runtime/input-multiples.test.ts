/**
 * Entry inputs declared as multiples (`f32[B, C, 4 * t, 32 * h, 32 * w]`, traced as "4*t", "32*h") are
 * checked before any compute: the size must divide, and the bound symbol must agree with other inputs.
 */
import { describe, expect, it } from 'vitest';
import { SoracError } from '../../core/errors.ts';
import type { HostTensor } from '../../core/host-tensor.ts';
import { validateInputs, type TensorSpec } from '../../runtime/execution/inputs.ts';

const f32 = (shape: number[]): HostTensor => ({ dtype: 'f32', shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
const specs: TensorSpec[] = [
  { name: 'x', dtype: 'f32', shape: ['B', 3, '4*t', '32*h', 'W'] },
  { name: 'z', dtype: 'f32', shape: ['B', 2, 't', 'h'] },
];

function err(f: () => unknown): SoracError {
  try {
    f();
  } catch (e) {
    if (e instanceof SoracError) return e;
    throw e;
  }
  throw new Error('expected a SoracError');
}

describe('validateInputs: declared multiples', () => {
  it('binds the symbol of a multiple', () => {
    const b = validateInputs(specs, { x: f32([1, 3, 8, 64, 5]), z: f32([1, 2, 2, 2]) });
    expect(b.get('t')).toBe(2);
    expect(b.get('h')).toBe(2);
    expect(b.get('4*t')).toBe(8);
  });
  it('refuses a size that is not a multiple, with the declared shape', () => {
    const e = err(() => validateInputs(specs, { x: f32([1, 3, 6, 64, 5]), z: f32([1, 2, 2, 2]) }));
    expect(e.code).toBe('SORA5503');
    expect(e.message).toMatch(/x: dim 2 is 6, not a multiple of 4 \(f32\[B, 3, 4\*t, 32\*h, W\]/);
  });
  it('refuses a multiple whose symbol disagrees with another input', () => {
    const e = err(() => validateInputs(specs, { x: f32([1, 3, 8, 64, 5]), z: f32([1, 2, 3, 2]) }));
    expect(e.code).toBe('SORA5503');
    expect(e.message).toMatch(/z: dim 2 \(t\) is 3, but t = 2 from x dim 2 \(4\*t\)/);
  });
});
