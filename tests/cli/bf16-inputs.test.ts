/**
 * bf16 inputs, through the built CLI: under `inputs: cast` an input that widens exactly into the graph
 * input's dtype (bf16 -> f32, as Open-Sora's samplers pass bf16 tensors) is accepted with one note and
 * gives exactly the outputs of the same values given as f32; anything else is one SORA5502 whose hint
 * names the policy rule, printed once; a dtype conflict inside the model names the module and the policy.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { convertBytes } from '../../core/convert.ts';
import { type HostTensor, hostBytes, hostFromBytes } from '../../core/host-tensor.ts';
import { readTensorsFile, writeTensorsFile } from '../../runtime/formats/tensors-io.ts';
import { ROOT, soracBin, STACK_FRAME } from '../helpers/cli.ts';

const G = join(ROOT, 'tests/fixtures/golden/stdit3/a');
const D = mkdtempSync(join(tmpdir(), 'sorac-bf16in-'));
const run = (inputs: string, out: string, extra: string[] = []) =>
  soracBin(['run', join(ROOT, 'examples/stdit3.sora'), '--config', join(G, 'config.json'), '-w', join(G, 'model.safetensors'), '-i', inputs, '-o', out, '--device', 'cpu', ...extra], { cwd: D });

/** The golden inputs with every f32 tensor converted to `to` (and, for the reference, back to f32). */
async function inputsAs(to: 'bf16' | 'roundtrip' | 'i64-timestep'): Promise<string> {
  const { tensors } = await readTensorsFile(join(G, 'inputs.safetensors'));
  const out = new Map<string, HostTensor>();
  for (const [k, t] of tensors) {
    if (t.dtype !== 'f32') out.set(k, t);
    else if (to === 'i64-timestep') out.set(k, k === 'timestep' ? { dtype: 'i64', shape: t.shape, data: BigInt64Array.from(t.data as Float32Array, (v) => BigInt(Math.round(v))) } : t);
    else {
      const b = hostFromBytes('bf16', t.shape, convertBytes(hostBytes(t), 'f32', 'bf16'));
      out.set(k, to === 'bf16' ? b : hostFromBytes('f32', t.shape, convertBytes(hostBytes(b), 'bf16', 'f32')));
    }
  }
  const p = join(D, `in-${to}.safetensors`);
  await writeTensorsFile(p, out);
  return p;
}

describe('bf16 inputs', () => {
  it('inputs: cast widens bf16 inputs exactly: one note, the same outputs as the bf16-rounded values in f32', async () => {
    const a = run(await inputsAs('bf16'), 'a.safetensors');
    expect(a.code, a.err).toBe(0);
    expect(a.err.match(/widened/g)).toHaveLength(1);
    expect(a.err).toMatch(/note: widened x bf16 -> f32, timestep bf16 -> f32, y bf16 -> f32.* exactly \(dtype rule inputs: cast, [^)]*examples\/stdit3\.sora:\d+:\d+\)/);
    const b = run(await inputsAs('roundtrip'), 'b.safetensors');
    expect(b.code, b.err).toBe(0);
    const [ta, tb] = [(await readTensorsFile(join(D, 'a.safetensors'))).tensors.get('output')!, (await readTensorsFile(join(D, 'b.safetensors'))).tensors.get('output')!];
    expect(Buffer.from(hostBytes(ta)).equals(Buffer.from(hostBytes(tb)))).toBe(true);
  });

  it('inputs: exact refuses bf16 inputs before compute: one SORA5502, the hint once, naming the rule', async () => {
    const r = run(await inputsAs('bf16'), 'c.safetensors', ['--dtype', 'inputs=exact']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/error: SORA5502: input dtypes do not match STDiT3:\n  x: dtype bf16, expected f32\n/);
    expect(r.err.match(/hint:/g)).toHaveLength(1);
    expect(r.err).toMatch(/hint: the model's dtype policy has inputs: exact \(--dtype inputs=exact\): pass the inputs in the dtype shown, or run with --dtype inputs=cast/);
    expect(r.err).not.toMatch(STACK_FRAME);
  });

  it('inputs: cast never turns an int into a float: SORA5502 naming the rule', async () => {
    const r = run(await inputsAs('i64-timestep'), 'd.safetensors');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/SORA5502: input dtype does not match STDiT3:\n  timestep: dtype i64, expected f32/);
    expect(r.err).toMatch(/hint: the model's dtype policy has inputs: cast \([^)]*examples\/stdit3\.sora:\d+:\d+\), which widens inputs exactly/);
  });

  it('a dtype conflict inside the model names the module path and the policy rules (no doubled code)', () => {
    const r = soracBin(['run', join(ROOT, 'examples/stdit3.sora'), '--config', join(G, 'config.json'), '-w', join(G, 'model.bf16.safetensors'), '-i', join(G, 'inputs.safetensors'), '-o', 'e.safetensors', '--device', 'cpu', '--dtype', 'inputs=exact', '--dtype', 'params=bf16', '--dtype', 'compute=bf16'], { cwd: D });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^error: SORA3008: linear: input is f32 but the weight is bf16\n  at std\/nn\.sora:\d+:\d+\n/);
    expect(r.err).toMatch(/note: in module y_embedder\.y_proj\.fc1\n/);
    expect(r.err).toMatch(/note: dtype policy rule "inputs" from --dtype inputs=exact\n/);
    expect(r.err).toMatch(/note: dtype policy rule "params" from --dtype params=bf16\n/);
    const c = soracBin(['check', join(ROOT, 'examples/stdit3.sora'), '--config', join(G, 'config.json'), '--dtype', 'inputs=exact', '--dtype', 'params=bf16', '--dtype', 'compute=bf16'], { cwd: D });
    expect(c.err).toMatch(/error SORA3008: linear: input is f32 but the weight is bf16\n[\s\S]*note: in module y_embedder\.y_proj\.fc1/);
    expect(readFileSync(join(ROOT, 'docs/guides/dtype-policy.md'), 'utf8')).toMatch(/widen/);
  });
});
