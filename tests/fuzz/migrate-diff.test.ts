/**
 * `sorac migrate diff` of two checkpoints with 10,000 keys per side finishes in seconds (issue 14
 * item 10: it took more than 120 s: per-key plan ops each sorted and scanned every key, leftover
 * pairing and "nearest key" explanations compared every key with every other).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { memoryIO } from '../../cli/io.ts';
import { main } from '../../cli/main.ts';
import { diffSignatures } from '../../runtime/migrate/diff.ts';
import { safetensors } from './make-corpus.ts';

const tmp = mkdtempSync(join(tmpdir(), 'sorac-mdiff-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function file(name: string, keys: string[]): string {
  const h: Record<string, unknown> = {};
  keys.forEach((k, i) => (h[k] = { dtype: 'U8', shape: [1 + (i % 3)], data_offsets: [0, 0] }));
  let off = 0;
  for (const k of keys) {
    const e = h[k] as { shape: number[]; data_offsets: number[] };
    e.data_offsets = [off, off + e.shape[0]!];
    off += e.shape[0]!;
  }
  const p = join(tmp, name);
  writeFileSync(p, safetensors(h, off));
  return p;
}

describe('migrate diff at scale', () => {
  it('10,000 keys per side, none shared: the CLI answers in seconds', async () => {
    const n = 10_000;
    const a = file('a.safetensors', Array.from({ length: n }, (_, i) => `blocks.${i}.attn.w${i % 17}.weight`));
    const b = file('b.safetensors', Array.from({ length: n }, (_, i) => `layers.${i}.mix.v${i % 11}.weight`));
    const io = memoryIO({ cwd: tmp });
    const t0 = performance.now();
    const code = await main(['migrate', 'diff', a, b, '--json'], io);
    const ms = performance.now() - t0;
    expect(code, io.err).toBeLessThanOrEqual(1);
    const out = JSON.parse(io.out);
    expect(out.counts ?? out.diff?.counts ?? out).toBeTruthy();
    expect(ms).toBeLessThan(30_000);
  });

  it('the proposal for many keys is the same as before on small inputs (nearest-key explanations)', () => {
    const from = new Map([['a.b.weight', { shape: [2], dtype: 'f32' as const }], ['x.y.bias', { shape: [3], dtype: 'f32' as const }]]);
    const to = new Map([['a.c.weight', { shape: [4], dtype: 'f32' as const }], ['z.y.bias', { shape: [5], dtype: 'f32' as const }]]);
    const d = diffSignatures(from, to);
    expect(d.unmatched.find((u) => u.key === 'a.b.weight')!.reason).toMatch(/nearest, a\.c\.weight/);
    expect(d.unmatched.find((u) => u.key === 'z.y.bias')!.reason).toMatch(/nearest, x\.y\.bias/);
  });
});
