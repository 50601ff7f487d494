/**
 * Decoded video tensors to pictures: `[B, 3, T, H, W]` floats in [-1, 1] (what every Open-Sora VAE decodes
 * to) -> 8-bit RGB frames, as Open-Sora's save_sample does (`x.clamp(-1, 1)`, `(x + 1) / 2 * 255`, round
 * half up via `+ 0.5` then truncation, i.e. `add_(0.5).clamp_(0, 255)` on the scaled value), and a contact sheet.
 */
import type { RgbImage } from './png.ts';

export interface VideoTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** The frames of sample `b` as RGB images (T of them). */
export function videoFrames(x: VideoTensor, b: number): RgbImage[] {
  const [B, C, T, H, W] = x.shape as [number, number, number, number, number];
  if (x.shape.length !== 5 || C !== 3) throw new RangeError(`videoFrames: expected [B, 3, T, H, W], got [${x.shape.join(', ')}]`);
  if (b < 0 || b >= B) throw new RangeError(`videoFrames: sample ${b} of ${B}`);
  const frames: RgbImage[] = [];
  const plane = H * W;
  for (let t = 0; t < T; t++) {
    const data = new Uint8Array(plane * 3);
    for (let c = 0; c < 3; c++) {
      const base = ((b * C + c) * T + t) * plane;
      for (let i = 0; i < plane; i++) {
        let v = x.data[base + i]!;
        v = v < -1 ? -1 : v > 1 ? 1 : Number.isNaN(v) ? 0 : v;
        data[i * 3 + c] = Math.min(255, Math.floor(((v + 1) / 2) * 255 + 0.5));
      }
    }
    frames.push({ width: W, height: H, data });
  }
  return frames;
}

/**
 * A contact sheet: one row per sample, up to `columns` frames per row (evenly spaced, first and last
 * included), each frame scaled (nearest neighbour) so the shorter side is at least `minSide` pixels,
 * with a `gap`-pixel dark border.
 */
export function contactSheet(rows: readonly (readonly RgbImage[])[], opts: { columns?: number; minSide?: number; gap?: number } = {}): RgbImage {
  const columns = opts.columns ?? 8;
  const gap = opts.gap ?? 4;
  const picked = rows.map((frames) => {
    const n = Math.min(columns, frames.length);
    return Array.from({ length: n }, (_, i) => frames[n === 1 ? 0 : Math.round((i * (frames.length - 1)) / (n - 1))]!);
  });
  const f0 = picked[0]![0]!;
  const scale = Math.max(1, Math.ceil((opts.minSide ?? 96) / Math.min(f0.width, f0.height)));
  const fw = f0.width * scale;
  const fh = f0.height * scale;
  const ncol = Math.max(...picked.map((r) => r.length));
  const width = gap + ncol * (fw + gap);
  const height = gap + picked.length * (fh + gap);
  const data = new Uint8Array(width * height * 3).fill(24);
  picked.forEach((row, r) =>
    row.forEach((f, c) => {
      const x0 = gap + c * (fw + gap);
      const y0 = gap + r * (fh + gap);
      for (let y = 0; y < fh; y++)
        for (let x = 0; x < fw; x++) {
          const src = (Math.floor(y / scale) * f.width + Math.floor(x / scale)) * 3;
          const dst = ((y0 + y) * width + x0 + x) * 3;
          data[dst] = f.data[src]!;
          data[dst + 1] = f.data[src + 1]!;
          data[dst + 2] = f.data[src + 2]!;
        }
    }),
  );
  return { width, height, data };
}
