/**
 * Noise for the samplers: where the initial latent z_T and the per-step noise come from.
 *
 * Two sources share one interface (`NoiseSource`):
 *
 * (a) `seededNoise(seed)`: sorac's own generator, deterministic on every platform. Philox4x32-10 (Salmon et al.,
 *     "Parallel random numbers: as easy as 1, 2, 3", SC'11; the Random123 known-answer vectors are unit tests)
 *     gives 4 uint32 per 128-bit counter; Box-Muller turns each pair (a, b) into two normals
 *     r·cos(2πv), r·sin(2πv) with u = (a + 1)·2^-32 ∈ (0, 1], v = b·2^-32 ∈ [0, 1), r = sqrt(-2 ln u), each
 *     rounded once to f32. ln, sin and cos are computed here from +, −, ×, ÷ and sqrt only (IEEE-754 correctly
 *     rounded in every JS engine; no FMA contraction in JS), not with Math.log/sin/cos whose last bit may differ
 *     between engines — so the same seed gives the same bytes everywhere.
 *     Layout: key = (seed mod 2^32, seed div 2^32); counter = (block mod 2^32, block div 2^32, stream, 0);
 *     element j of a stream is lane j mod 4 of block j div 4. Stream 0 is the initial noise, stream i + 1 the
 *     noise of sampler step i. Streams are independent of each other, so the noise of step i does not depend on
 *     whether earlier steps drew any (a sampler only draws where upstream's noise can reach the result).
 *     It is NOT torch.randn: a seed does not reproduce a PyTorch run (parity uses recorded noise, below).
 *
 * (b) `fileNoise(path)`: noise read from a safetensors file, for parity with a recorded upstream run. Tensors:
 *       `init`      f32, the latent's shape [B, C, T, H, W]: the initial noise z_T
 *       `step.<i>`  f32, same shape: the noise drawn at sampler step i (i = 0 .. steps-1, loop order)
 *     Only the steps a sampler actually uses must be present (IDDPM: every step but the last; RFLOW: steps where a
 *     latent mask re-noises frames). tests/fixtures/golden-sampler/ holds such files, written by its harness.
 */
import { openSafetensors } from '../formats/safetensors.ts';
import { SamplingError } from './errors.ts';
import { type F32Tensor, f32, fmt, numel } from './tensor.ts';

export interface NoiseSource {
  readonly description: string;
  /** The initial latent noise z_T for a latent of `shape` [B, C, T, H, W]. */
  initial(shape: readonly number[]): Promise<F32Tensor>;
  /** The noise of sampler step `i` (0-based, in loop order) for a latent of `shape`. */
  step(i: number, shape: readonly number[]): Promise<F32Tensor>;
  close?(): Promise<void>;
}

// ---- Philox4x32-10 ------------------------------------------------------------------------------

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two uint32 (exact, from 16-bit halves). */
function mulhi(a: number, b: number): number {
  const al = a & 0xffff;
  const ah = a >>> 16;
  const bl = b & 0xffff;
  const bh = b >>> 16;
  const lolo = al * bl;
  const hilo = ah * bl;
  const lohi = al * bh;
  const cross = (lolo >>> 16) + (hilo & 0xffff) + lohi;
  return (ah * bh + (hilo >>> 16) + Math.floor(cross / 65536)) >>> 0;
}

/** Philox4x32 with `rounds` rounds (10 is the standard), writing 4 uint32 into `out`. */
export function philox4x32(ctr: readonly number[], key: readonly number[], out: Uint32Array = new Uint32Array(4), rounds = 10): Uint32Array {
  let c0 = ctr[0]! >>> 0;
  let c1 = ctr[1]! >>> 0;
  let c2 = ctr[2]! >>> 0;
  let c3 = ctr[3]! >>> 0;
  let k0 = key[0]! >>> 0;
  let k1 = key[1]! >>> 0;
  for (let r = 0; r < rounds; r++) {
    if (r > 0) {
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
    const hi0 = mulhi(M0, c0);
    const lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi(M1, c2);
    const lo1 = Math.imul(M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
  return out;
}

// ---- deterministic elementary functions (+ − × ÷ sqrt only) -------------------------------------

const LN2 = 0.6931471805599453;
const SQRT_HALF = 0.7071067811865476;
const HALF_PI = 1.5707963267948966;
const INV_ODD = Array.from({ length: 12 }, (_, k) => 1 / (2 * k + 1));

/** ln(u) for u in (0, 1]: u = m·2^-e with m in [√½, √2), ln m = 2·atanh((m−1)/(m+1)) as a series. */
export function detLog(u: number): number {
  let m = u;
  let e = 0;
  while (m < SQRT_HALF) {
    m *= 2;
    e++;
  }
  const s = (m - 1) / (m + 1);
  const s2 = s * s;
  let p = INV_ODD[11]!;
  for (let k = 10; k >= 0; k--) p = p * s2 + INV_ODD[k]!;
  return 2 * s * p - e * LN2;
}

/** scratch for sinCos2Pi: [sin, cos] */
const SC = new Float64Array(2);

/** sin and cos of b in [0, π/4] by their Taylor series (error < 1e-17), into SC. */
function sinCosSmall(b: number): void {
  const b2 = b * b;
  let s = 1;
  let c = 1;
  for (let k = 9; k >= 1; k--) {
    s = 1 - (s * b2) / ((2 * k) * (2 * k + 1));
    c = 1 - (c * b2) / ((2 * k - 1) * (2 * k));
  }
  SC[0] = b * s;
  SC[1] = c;
}

/** sin(2πv), cos(2πv) for v in [0, 1) into SC, with an exact reduction to [0, π/4]. */
function sinCos2PiInto(v: number): void {
  const v4 = v * 4;
  const q = Math.floor(v4);
  const f = v4 - q;
  sinCosSmall((f <= 0.5 ? f : 1 - f) * HALF_PI);
  let sa = SC[0]!;
  let ca = SC[1]!;
  if (f > 0.5) {
    const t = sa;
    sa = ca;
    ca = t;
  }
  if (q === 0) {
    SC[0] = sa;
    SC[1] = ca;
  } else if (q === 1) {
    SC[0] = ca;
    SC[1] = -sa;
  } else if (q === 2) {
    SC[0] = -sa;
    SC[1] = -ca;
  } else {
    SC[0] = -ca;
    SC[1] = sa;
  }
}

/** [sin(2πv), cos(2πv)] for v in [0, 1), computed with + − × ÷ only. */
export function detSinCos2Pi(v: number): [number, number] {
  sinCos2PiInto(v);
  return [SC[0]!, SC[1]!];
}

const TWO_M32 = 2 ** -32;

function splitSeed(seed: number | bigint): [number, number] {
  const big = typeof seed === 'bigint' ? seed : Number.isSafeInteger(seed) && seed >= 0 ? BigInt(seed) : -1n;
  if (big < 0n || big >= 1n << 64n)
    throw new SamplingError('SORA8217', `seed ${String(seed)} is not an integer in [0, 2^64)`, 'pass a non-negative integer seed (a bigint for values above 2^53)');
  return [Number(big & 0xffffffffn), Number(big >> 32n)];
}

/** `n` standard normals of stream `stream` for `seed` (see the module comment for the layout). */
export function philoxNormals(seed: number | bigint, stream: number, n: number, out: Float32Array = new Float32Array(n)): Float32Array {
  const key = splitSeed(seed);
  const blk = new Uint32Array(4);
  const ctr = [0, 0, stream >>> 0, 0];
  for (let j = 0; j < n; j += 4) {
    const b = j / 4;
    ctr[0] = b >>> 0;
    ctr[1] = Math.floor(b / 2 ** 32) >>> 0;
    philox4x32(ctr, key, blk);
    for (let p = 0; p < 2; p++) {
      const u = (blk[2 * p]! + 1) * TWO_M32;
      const v = blk[2 * p + 1]! * TWO_M32;
      const r = Math.sqrt(-2 * detLog(u));
      sinCos2PiInto(v);
      if (j + 2 * p < n) out[j + 2 * p] = r * SC[1]!;
      if (j + 2 * p + 1 < n) out[j + 2 * p + 1] = r * SC[0]!;
    }
  }
  return out;
}

/** sorac's seeded generator: stream 0 = initial noise, stream i + 1 = noise of step i. */
export function seededNoise(seed: number | bigint): NoiseSource {
  splitSeed(seed);
  return {
    description: `seeded Philox4x32-10 (seed ${String(seed)})`,
    async initial(shape) {
      return f32(shape, philoxNormals(seed, 0, numel(shape)));
    },
    async step(i, shape) {
      return f32(shape, philoxNormals(seed, i + 1, numel(shape)));
    },
  };
}

/** Noise recorded in a safetensors file: `init` and `step.<i>` (see the module comment). */
export async function fileNoise(path: string): Promise<NoiseSource> {
  let store;
  try {
    store = await openSafetensors(path);
  } catch (e) {
    throw new SamplingError('SORA8206', `cannot read noise file ${path}: ${(e as Error).message.split('\n')[0]}`, 'pass a safetensors file with an `init` tensor and `step.<i>` tensors (docs/guides/sampling.md)');
  }
  const s = store;
  async function get(key: string, shape: readonly number[]): Promise<F32Tensor> {
    const t = s.tensors.get(key);
    if (!t) {
      const have = [...s.tensors.keys()].filter((k) => k === 'init' || k.startsWith('step.'));
      throw new SamplingError('SORA8203', `noise file ${path} has no tensor "${key}" (it has ${have.length ? have.slice(0, 6).join(', ') + (have.length > 6 ? ', …' : '') : 'no init/step.<i> tensors'})`, `record the noise of every step the sampler uses (IDDPM: steps 0 .. n-2; RFLOW with a latent mask: every step), or sample with fewer steps`);
    }
    if (t.dtype !== 'f32') throw new SamplingError('SORA8205', `noise tensor "${key}" in ${path} is ${t.dtype}, not f32`, 'store noise as float32');
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
      throw new SamplingError('SORA8204', `noise tensor "${key}" in ${path} has shape ${fmt(t.shape)} but the latent is ${fmt(shape)}`, 'record the noise for this latent size (batch, channels, frames, height, width must match)');
    const bytes = await s.read(key);
    const copy = new Uint8Array(bytes.byteLength);
    copy.set(bytes);
    return f32(shape, new Float32Array(copy.buffer, 0, numel(shape)));
  }
  return {
    description: `noise file ${path}`,
    initial: (shape) => get('init', shape),
    step: (i, shape) => get(`step.${i}`, shape),
    close: () => s.close(),
  };
}
