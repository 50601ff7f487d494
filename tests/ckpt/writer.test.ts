/**
 * runtime/training-ckpt `writeTrainingCheckpoint`: the Open-Sora 2.0 layout (ColossalAI shard names,
 * float-MiB index, ema.safetensors, running_states.json), written atomically; read back by our
 * readers and, where Debian's torch is present, by a Python loader that follows ColossalAI's
 * index → shard path.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WriterTensor } from '../../runtime/formats/safetensors-writer.ts';
import { openWeights } from '../../runtime/weights/store.ts';
import { inspectCheckpoint, listCheckpoints } from '../../runtime/training/checkpoints.ts';
import { writeTrainingCheckpoint } from '../../runtime/training/writer.ts';
import { ASYNC20, EXP, run, tempRoot } from './helpers.ts';

const tmp = tempRoot('writer');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function load(spec: string, part: 'ema' | 'model') {
  const s = await openWeights(spec, { part });
  const m = new Map<string, WriterTensor & { bytes: Uint8Array }>();
  for (const t of s.tensors.values()) {
    const bytes = await t.read();
    m.set(t.key, { dtype: t.dtype, shape: t.shape, data: bytes, bytes });
  }
  await s.close();
  return m;
}

describe('writeTrainingCheckpoint', () => {
  let model: Awaited<ReturnType<typeof load>>;
  let ema: Awaited<ReturnType<typeof load>>;
  const exp = join(tmp, 'outputs', '001-mine');
  beforeAll(async () => {
    model = await load(join(EXP, ASYNC20), 'model');
    ema = await load(join(EXP, ASYNC20), 'ema');
  });

  it('writes a complete checkpoint that ls picks as latest and the readers load back exactly', async () => {
    const r = await writeTrainingCheckpoint(exp, { epoch: 2, step: 3, globalStep: 10, actualUpdateStep: 5, batchSize: 4, model, ema, shardSize: 8000, copyFrom: join(EXP, ASYNC20) });
    expect(r.dir).toBe(join(exp, 'epoch2-global_step5'));
    const names = readdirSync(join(r.dir, 'model')).sort();
    expect(names.filter((n) => n.endsWith('.safetensors')).every((n) => /^model-\d{5}\.safetensors$/.test(n))).toBe(true);
    expect(names.length).toBeGreaterThan(2);
    const idx = JSON.parse(readFileSync(join(r.dir, 'model', 'model.safetensors.index.json'), 'utf8'));
    expect(idx.metadata.total_size).toBeCloseTo((7618 * 2) / 1024 / 1024, 9);
    expect(JSON.parse(readFileSync(join(r.dir, 'running_states.json'), 'utf8'))).toEqual({ epoch: 2, step: 3, global_step: 10, batch_size: 4, actual_update_step: 5 });
    const info = await inspectCheckpoint(r.dir);
    expect(info.problems).toEqual([]);
    expect(info).toMatchObject({ complete: true, layout: '2.0', epoch: 2, step: 3, globalStep: 10 });
    expect(Object.keys(info.parts).sort()).toEqual(['ema', 'lr_scheduler', 'master', 'model', 'optimizer', 'running_states', 'sampler']);
    expect((await listCheckpoints(exp)).latest?.dir).toBe(r.dir);
    for (const [part, src] of [['model', model], ['ema', ema]] as const) {
      const back = await load(r.dir, part);
      expect(back.size).toBe(src.size);
      for (const [k, t] of src) expect(Buffer.from(back.get(k)!.bytes).equals(Buffer.from(t.bytes)), `${part} ${k}`).toBe(true);
    }
    expect((await run(['ckpt', 'verify', r.dir])).code).toBe(0);
    expect(readdirSync(exp).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('never overwrites; a failure mid-write leaves no checkpoint and no temp dir', async () => {
    await expect(writeTrainingCheckpoint(exp, { epoch: 2, step: 3, globalStep: 10, actualUpdateStep: 5, model })).rejects.toMatchObject({ code: 'SORA5103' });
    let n = 0;
    const failing = new Map([...model].map(([k, t]) => [k, { ...t, data: () => { if (++n === 30) throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' }); return t.bytes; } }]));
    await expect(writeTrainingCheckpoint(exp, { epoch: 3, step: 1, globalStep: 11, model: failing })).rejects.toMatchObject({ code: 'SORA5105' });
    expect(existsSync(join(exp, 'epoch3-global_step11'))).toBe(false);
    expect(readdirSync(exp).filter((n) => n.startsWith('.'))).toEqual([]);
    expect((await listCheckpoints(exp)).checkpoints.map((c) => c.name)).toEqual(['epoch2-global_step5']);
  });

  it("emaFormat 'pt' writes ema.pt (what Open-Sora v1.x load() reads) with the same tensors", async () => {
    const r = await writeTrainingCheckpoint(join(tmp, 'v1'), { epoch: 0, step: 2, globalStep: 2, batchSize: 4, model, ema, emaFormat: 'pt', copyFrom: join(EXP, ASYNC20) });
    expect(readdirSync(r.dir)).toContain('ema.pt');
    expect(readdirSync(r.dir)).not.toContain('ema.safetensors');
    const back = await load(r.dir, 'ema');
    for (const [k, t] of ema) expect(Buffer.from(back.get(k)!.bytes).equals(Buffer.from(t.bytes)), k).toBe(true);
    expect((await run(['ckpt', 'verify', r.dir])).code).toBe(0);
  });

  it('refuses to carry over damaged parts from copyFrom', async () => {
    const src = join(tmp, 'src-exp');
    cpSync(join(EXP, ASYNC20), join(src, ASYNC20), { recursive: true });
    unlinkSync(join(src, ASYNC20, 'optimizer', 'optimizer-00002.safetensors'));
    await expect(writeTrainingCheckpoint(exp, { epoch: 4, step: 1, globalStep: 12, model, copyFrom: join(src, ASYNC20) })).rejects.toMatchObject({
      code: 'SORA5102',
      message: expect.stringMatching(/optimizer damaged: optimizer\/optimizer-00002\.safetensors: missing/),
    });
    expect(existsSync(join(exp, 'epoch4-global_step12'))).toBe(false);
    expect(readdirSync(exp).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  const py = '/usr/bin/python3';
  // the cross-check needs Debian's python3-torch (present on the project's machines); the TS-side checks always run
  const hasTorch = existsSync(py) && spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
  it.skipIf(!hasTorch)('Python + torch load it the ColossalAI way (index → shards) with the same bytes', async () => {
    const dir = join(exp, 'epoch2-global_step5');
    const script = `
import json, os, struct, sys, hashlib, torch
d = sys.argv[1]
rs = json.load(open(os.path.join(d, "running_states.json")))
assert (rs["epoch"], rs["step"]) == (2, 3)
DT = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "I64": torch.int64}
def load_file(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__": continue
        s, e = v["data_offsets"]
        raw = bytearray(b[8 + n + s:8 + n + e])
        out[k] = torch.frombuffer(raw, dtype=DT[v["dtype"]]).reshape(v["shape"]) if e > s else torch.empty(v["shape"], dtype=DT[v["dtype"]])
    return out
# ColossalAI load_sharded_model: read the index, load each shard file it names
idx = json.load(open(os.path.join(d, "model", "model.safetensors.index.json")))
sd = {}
for shard in sorted(set(idx["weight_map"].values())):
    sd.update(load_file(os.path.join(d, "model", shard)))
assert set(sd) == set(idx["weight_map"]), "index and shards disagree"
ema = load_file(os.path.join(d, "ema.safetensors"))
def digest(t):
    t = t.contiguous()
    return hashlib.sha256((t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()).hexdigest()
print(json.dumps({"model": {k: digest(v) for k, v in sd.items()}, "ema": {k: digest(v) for k, v in ema.items()}}))
`;
    const r = spawnSync(py, ['-c', script, dir], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    const got = JSON.parse(r.stdout) as { model: Record<string, string>; ema: Record<string, string> };
    const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
    for (const [k, t] of model) expect(got.model[k], k).toBe(sha(t.bytes));
    for (const [k, t] of ema) expect(got.ema[k], k).toBe(sha(t.bytes));
  });
});
