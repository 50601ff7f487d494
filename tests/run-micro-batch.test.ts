/**
 * `sorac run --micro-batch N [--micro-axis NAME]` and the API's microBatch option: the same outputs as one
 * pass (streamed into --out), declared axes only, clear usage errors before any compute.
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ModelError, run as apiRun } from '../api/run.ts';
import { memoryIO } from '../cli/io.ts';
import { main } from '../cli/main.ts';
import { readTensorsFile, writeTensorsFile } from '../runtime/formats/tensors-io.ts';
import { compileExample, maxAbsDiff } from './helpers/parity.ts';
import { PIPELINE, buildPipelineCheckpoint, i64, randomTensor, tinyPipelineConfig } from './helpers/vae-pipeline.ts';

let dir: string;
let ckpt: string;
let cfg: string;
let inputs: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sorac-mbcli-'));
  ckpt = await buildPipelineCheckpoint(dir);
  cfg = join(dir, 'cfg.json');
  writeFileSync(cfg, JSON.stringify(tinyPipelineConfig()));
  inputs = join(dir, 'in.safetensors');
  await writeTensorsFile(inputs, new Map([['z', randomTensor([1, 4, 12, 8, 8], 42)], ['num_frames', i64(39)]]));
});

async function cli(args: string[], out = join(dir, `out-${Math.random().toString(36).slice(2)}.safetensors`)) {
  const io = memoryIO();
  const code = await main(['run', PIPELINE, '--config', cfg, '-w', ckpt, '-i', inputs, '-o', out, '-e', 'decode', '--device', 'cpu', ...args], io);
  return { code, out: io.out, err: io.err, file: out };
}

describe('sorac run --micro-batch', () => {
  it('decodes chunk by chunk along Tz into --out: equal to one pass', async () => {
    const one = await cli([]);
    expect(one.code, one.err).toBe(0);
    const mb = await cli(['--micro-batch', '5', '--micro-axis', 'Tz']);
    expect(mb.code, mb.err).toBe(0);
    expect(mb.out).toMatch(/3 chunks of 5 along Tz/);
    const a = (await readTensorsFile(one.file)).tensors.get('x')!;
    const b = await readTensorsFile(mb.file);
    expect(b.tensors.get('x')!.shape).toEqual([1, 3, 39, 16, 16]);
    expect(maxAbsDiff(a, b.tensors.get('x')!)).toBe(0);
    expect(b.metadata['sorac.micro_batch']).toBe('Tz:5');
    expect(b.metadata['sorac.entry']).toBe('decode');
  });
  it('--json reports the chunks; the default axis is the first declared (B)', async () => {
    const r = await cli(['--micro-batch', '1', '--json']);
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out).microBatch).toEqual({ axis: 'B', size: 1, chunks: 1 });
  });
  it('usage errors before any compute, and no output file', async () => {
    const cases: [string[], RegExp][] = [
      [['--micro-batch', '0'], /--micro-batch 0 is not a positive integer/],
      [['--micro-axis', 'Tz'], /--micro-axis needs --micro-batch/],
      [['--micro-batch', '5', '--micro-axis', 'h'], /cannot be micro-batched along "h"[\s\S]*declared micro-batch axes: B, Tz/],
      [['--micro-batch', '4', '--micro-axis', 'Tz'], /not a multiple of 5/],
    ];
    for (const [args, re] of cases) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.err).toMatch(re);
      expect(existsSync(r.file)).toBe(false);
    }
  });
});

describe('api run({ microBatch })', () => {
  it('equals one pass; undeclared axes are a ModelError', async () => {
    const m = compileExample(PIPELINE, tinyPipelineConfig());
    const feed = new Map([['z', randomTensor([1, 4, 12, 8, 8], 43)], ['num_frames', i64(39)]]);
    const one = await apiRun(m, { weights: ckpt, inputs: feed, entry: 'decode', device: 'cpu' });
    const mb = await apiRun(m, { weights: ckpt, inputs: feed, entry: 'decode', device: 'cpu', microBatch: { size: 10, axis: 'Tz' } });
    expect(maxAbsDiff(one.get('x')!, mb.get('x')!)).toBe(0);
    await expect(apiRun(m, { weights: ckpt, inputs: feed, entry: 'decode', device: 'cpu', microBatch: { size: 1, axis: 'w' } })).rejects.toThrow(ModelError);
  });
});
