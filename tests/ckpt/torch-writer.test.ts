/**
 * runtime/torch-writer: `torch.save`-compatible state dicts (for v1.x `ema.pt`). Read back by
 * sorac's restricted reader and — where Debian's torch is present — by `torch.load` itself, with and
 * without ZIP64 records.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WriterTensor } from '../../runtime/formats/safetensors-writer.ts';
import { openWeights } from '../../runtime/weights/store.ts';
import { writeTorchStateDict } from '../../runtime/formats/torch-writer.ts';
import { verifyFile } from '../../runtime/weights/verify.ts';
import { EXP, tempRoot, V12 } from './helpers.ts';

const tmp = tempRoot('torchw');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('writeTorchStateDict', () => {
  const src = new Map<string, WriterTensor & { bytes: Uint8Array }>();
  beforeAll(async () => {
    const s = await openWeights(join(EXP, V12)); // ema.pt: f32
    for (const t of s.tensors.values()) {
      const bytes = await t.read();
      src.set(t.key, { dtype: t.dtype, shape: t.shape, data: bytes, bytes });
    }
    await s.close();
    // other dtypes, a scalar and an empty tensor
    const u8 = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    src.set('extra.i64', { dtype: 'i64', shape: [3], data: u8(new BigInt64Array([1n, -2n, 3n])), bytes: u8(new BigInt64Array([1n, -2n, 3n])) });
    src.set('extra.scalar', { dtype: 'f32', shape: [], data: u8(new Float32Array([3.5])), bytes: u8(new Float32Array([3.5])) });
    src.set('extra.empty', { dtype: 'f32', shape: [0, 4], data: new Uint8Array(0), bytes: new Uint8Array(0) });
    src.set('extra.bool', { dtype: 'bool', shape: [2], data: new Uint8Array([1, 0]), bytes: new Uint8Array([1, 0]) });
  });

  for (const zip64 of [false, true]) {
    it(`${zip64 ? 'ZIP64' : 'plain zip'}: sorac reads every tensor back exactly; CRCs and structure verify`, async () => {
      const p = join(tmp, `ema${zip64 ? '64' : ''}.pt`);
      await writeTorchStateDict(p, src, { zip64 });
      const s = await openWeights(p);
      expect(s.format).toBe('torch-zip');
      expect(s.tensors.size).toBe(src.size);
      for (const [k, t] of src) {
        const b = s.tensors.get(k)!;
        expect(b.dtype, k).toBe(t.dtype);
        expect(b.shape, k).toEqual(t.shape);
        expect(b.offset! % 64, k).toBe(0);
        expect(sha(await b.read()), k).toBe(sha(t.bytes));
      }
      await s.close();
      const v = await verifyFile(p);
      expect(v.status, v.detail).toBe('ok');
      expect(readdirSync(tmp).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    });
  }

  const py = '/usr/bin/python3';
  // the cross-check needs Debian's python3-torch (present on the project's machines); the TS-side checks always run
  const hasTorch = existsSync(py) && spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
  it.skipIf(!hasTorch)('torch.load reads both (weights and dtypes identical)', () => {
    const script = `
import hashlib, json, sys, torch
out = {}
for p in sys.argv[1:]:
    sd = torch.load(p, map_location="cpu")
    assert type(sd).__name__ == "OrderedDict", type(sd)
    def h(t):
        t = t.contiguous()
        return [str(t.dtype).replace("torch.", ""), list(t.shape), hashlib.sha256((t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()).hexdigest()]
    out[p] = {k: h(v) for k, v in sd.items()}
print(json.dumps(out))
`;
    const files = [join(tmp, 'ema.pt'), join(tmp, 'ema64.pt')];
    const r = spawnSync(py, ['-c', script, ...files], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    const got = JSON.parse(r.stdout) as Record<string, Record<string, [string, number[], string]>>;
    const name: Record<string, string> = { f32: 'float32', i64: 'int64', bool: 'bool', bf16: 'bfloat16', f16: 'float16' };
    for (const f of files) {
      expect(Object.keys(got[f]!)).toEqual([...src.keys()]);
      for (const [k, t] of src) expect(got[f]![k], `${f} ${k}`).toEqual([name[t.dtype], [...t.shape], sha(t.bytes)]);
    }
  });
});
