/**
 * `sorac run` on bad input: every problem is reported clearly before any compute, and no output
 * file is left behind.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../cli/main.ts';
import { memoryIO } from '../cli/io.ts';
import { readTensorsFile, writeTensorsFile } from '../runtime/formats/tensors-io.ts';
import { GOLDEN, goldenConfig } from './helpers/parity.ts';

const G = join(GOLDEN, 'stdit3', 'a');

async function run(extra: { inputs?: string; weights?: string; args?: string[] } = {}) {
  const d = mkdtempSync(join(tmpdir(), 'sorac-run-'));
  const cfg = join(d, 'cfg.json');
  writeFileSync(cfg, JSON.stringify(goldenConfig('stdit3')));
  const out = join(d, 'out.safetensors');
  const io = memoryIO();
  const code = await main(['run', 'examples/stdit3.sora', '--config', cfg, '-w', extra.weights ?? join(G, 'model.safetensors'), '-i', extra.inputs ?? join(G, 'inputs.safetensors'), '-o', out, '--device', 'cpu', ...(extra.args ?? [])], io);
  return { code, err: io.err, out: io.out, outFile: out, dir: d };
}

async function editedInputs(edit: (m: Map<string, any>) => void): Promise<string> {
  const { tensors } = await readTensorsFile(join(G, 'inputs.safetensors'));
  edit(tensors);
  const p = join(mkdtempSync(join(tmpdir(), 'sorac-in-')), 'in.safetensors');
  await writeTensorsFile(p, tensors);
  return p;
}

describe('sorac run', () => {
  it('runs the golden case and writes the output', async () => {
    const r = await run();
    expect(r.code, r.err).toBe(0);
    const { tensors } = await readTensorsFile(r.outFile);
    expect(tensors.get('output')!.shape).toEqual([2, 8, 4, 8, 8]);
  });

  it('rejects an unknown input name, listing the inputs', async () => {
    const r = await run({ inputs: await editedInputs((m) => m.set('xx', m.get('x')).delete('x')) });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/not inputs of STDiT3.forward: xx/);
    expect(r.err).toMatch(/inputs are: x, timestep, y, mask\?, x_mask\?/);
    expect(existsSync(r.outFile)).toBe(false);
  });

  it('rejects a missing required input', async () => {
    const r = await run({ inputs: await editedInputs((m) => m.delete('fps')) });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/lacks required input fps/);
    expect(existsSync(r.outFile)).toBe(false);
  });

  it('rejects an input of the wrong shape before compute', async () => {
    const r = await run({ inputs: await editedInputs((m) => m.set('x', { ...m.get('x'), shape: [2, 8, 4, 8, 4] })) });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/x/);
    expect(r.err).toMatch(/x: dim 1 is 8, expected 4/);
    expect(existsSync(r.outFile)).toBe(false);
  });

  it('rejects an input of the wrong dtype before compute', async () => {
    const r = await run({ inputs: await editedInputs((m) => m.set('mask', { dtype: 'f32', shape: [2, 8], data: new Float32Array(16).fill(1) })) });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/mask/);
    expect(r.err).toMatch(/i64|dtype/);
    expect(existsSync(r.outFile)).toBe(false);
  });

  it('rejects inconsistent symbolic dimensions across inputs (B)', async () => {
    const r = await run({
      inputs: await editedInputs((m) => {
        const t = m.get('timestep');
        m.set('timestep', { dtype: 'f32', shape: [3], data: new Float32Array([1, 2, 3]) });
        void t;
      }),
    });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/B/);
    expect(existsSync(r.outFile)).toBe(false);
  });

  it('rejects a checkpoint for another model with the load report', async () => {
    const r = await run({ weights: join(GOLDEN, 'mmdit', 'a', 'model.safetensors') });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/does not fit STDiT3 v1\.2; nothing was run/);
    expect(r.err).toMatch(/missing from the checkpoint/);
    expect(existsSync(r.outFile)).toBe(false);
  });

  it('rejects a truncated safetensors checkpoint', async () => {
    const d = mkdtempSync(join(tmpdir(), 'sorac-trunc-'));
    const w = join(d, 'model.safetensors');
    copyFileSync(join(G, 'model.safetensors'), w);
    truncateSync(w, readFileSync(w).length - 1000);
    const r = await run({ weights: w });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/truncat/i);
    expect(r.err).not.toMatch(/\n\s+at .*\.(ts|js):\d+/);
    expect(existsSync(r.outFile)).toBe(false);
  });

  it('runs bf16 weights on CPU in f32, saying so once', async () => {
    const r = await run({ weights: join(G, 'model.bf16.safetensors') });
    expect(r.code, r.err).toBe(0);
    expect(r.err.match(/bf16 weights converted to f32/g)?.length).toBe(1);
  });

  it('takes the absent path for an optional input that is not in the file (x_mask)', async () => {
    const r = await run();
    expect(r.code).toBe(0);
  });
});
