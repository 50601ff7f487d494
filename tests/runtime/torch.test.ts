import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { openTorchFile, sniffFile } from '../../runtime/formats/torch-file.ts';
import { PickleError, toPlain, unpickle } from '../../runtime/formats/unpickle.ts';
import { openWeights } from '../../runtime/weights/store.ts';
import { SoracError } from '../../core/errors.ts';
import { LimitError } from '../../core/limits.ts';

const FIX = join(import.meta.dirname, '../fixtures/ckpt');
const ref = JSON.parse(readFileSync(join(FIX, 'reference.json'), 'utf8'));
const tmp = mkdtempSync(join(tmpdir(), 'sorac-torch-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

async function expectWeightsError(p: Promise<unknown>, code: string, re?: RegExp): Promise<SoracError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(SoracError);
    expect((e as SoracError).code).toBe(code);
    if (re) expect((e as SoracError).message + '\n' + ((e as SoracError).hint ?? '')).toMatch(re);
    return e as SoracError;
  }
  throw new Error('expected a SoracError');
}

describe('torch zip reader (files made by torch.save)', () => {
  for (const name of ['sd_zip.pt', 'sd_zip64.pt']) {
    it(`${name}: keys, shapes, dtypes and exact bytes match torch`, async () => {
      const s = await openWeights(join(FIX, 'torch', name));
      expect(s.format).toBe('torch-zip');
      expect([...s.tensors.keys()].sort()).toEqual(Object.keys(ref.sd).sort());
      expect([...s.tensors.keys()][0]).toBe('x_embedder.proj.weight'); // file order is kept
      for (const [k, r] of Object.entries<any>(ref.sd)) {
        const t = s.tensors.get(k)!;
        expect(t.shape).toEqual(r.shape);
        expect(hex(await t.read())).toBe(r.hex);
      }
      expect(s.tensors.get('bf16.weight')!.dtype).toBe('bf16');
      expect(s.tensors.get('half.weight')!.dtype).toBe('f16');
      expect(s.tensors.get('mask')!.dtype).toBe('bool');
      expect(s.tensors.get('t_embedder.freq')!.dtype).toBe('i64');
      // stored entries: direct offsets that point at the same bytes
      const t = s.tensors.get('x_embedder.proj.weight')!;
      expect(t.offset).toBeTypeOf('number');
      const raw = readFileSync(join(FIX, 'torch', name)).subarray(t.offset!, t.offset! + t.byteLength);
      expect(hex(raw)).toBe(ref.sd['x_embedder.proj.weight'].hex);
      await s.close();
    });
  }

  it('torch.save zip records start 64-byte aligned', async () => {
    const s = await openWeights(join(FIX, 'torch/sd_zip.pt'));
    for (const t of s.tensors.values()) if (t.byteLength) expect(t.offset! % 64).toBe(0);
    await s.close();
  });

  it('views: storage offsets, non-contiguous strides and transposes are materialised like torch', async () => {
    const s = await openWeights(join(FIX, 'torch/views.pt'));
    for (const [k, h] of Object.entries<string>(ref.views)) expect(hex(await s.tensors.get(k)!.read())).toBe(h);
    expect(s.tensors.get('row1')!.offset).toBe(s.tensors.get('base')!.offset! + 16);
    expect(s.tensors.get('col1')!.offset).toBeUndefined();
    expect(s.tensors.get('t')!.offset).toBeUndefined();
    expect(s.notes.join('\n')).toMatch(/2 non-contiguous view/);
    await s.close();
  });

  it('parameters (_rebuild_parameter)', async () => {
    const s = await openWeights(join(FIX, 'torch/params.pt'));
    expect(hex(await s.tensors.get('weight')!.read())).toBe(ref.params.weight);
    expect(hex(await s.tensors.get('bias')!.read())).toBe(ref.params.bias);
    await s.close();
  });

  it('optimizer state dict: floats, tuples, None in param_groups; tensors flattened', async () => {
    const s = await openWeights(join(FIX, 'torch/optimizer.pt'));
    expect([...s.tensors.keys()]).toContain('state.0.exp_avg');
    expect(s.tensors.get('state.0.step')!.shape).toEqual([]);
    const pg = (s.extras.param_groups as any[])[0];
    expect(pg.lr).toBe(0.001);
    expect(pg.betas).toEqual([0.9, 0.999]);
    expect(pg.eps).toBe(1e-8);
    expect(pg.foreach).toBeNull();
    await s.close();
  });

  it('nested containers are unwrapped and reported, never dropped silently', async () => {
    const a = await openWeights(join(FIX, 'torch/nested_ema.pt'));
    expect(a.notes).toContain("unwrapped ['ema']");
    expect(a.extras).toEqual({ step: 100 });
    expect(a.tensors.size).toBe(13);
    const b = await openWeights(join(FIX, 'torch/nested_state_dict.pth'));
    expect(b.notes).toContain("unwrapped ['state_dict']");
    expect(b.extras).toEqual({ epoch: 3 });
    const c = await openWeights(join(FIX, 'torch/module_prefix.bin'));
    expect(c.notes.join()).toMatch(/stripped prefix module\./);
    expect(c.tensors.has('x_embedder.proj.weight')).toBe(true);
    // raw mode keeps the container path so the load report can point at it
    const d = await openWeights(join(FIX, 'torch/nested_ema.pt'), { unwrap: false });
    expect(d.tensors.has('ema.x_embedder.proj.weight')).toBe(true);
    expect(d.notes.join()).toMatch(/flattened nested containers \['ema'\]/);
    for (const s of [a, b, c, d]) await s.close();
  });

  it('extension-less Open-Sora files (lr_scheduler, sampler) read as plain data', async () => {
    const dir = join(FIX, 'train/epoch1-global_step200');
    const lr = await openTorchFile(join(dir, 'lr_scheduler'));
    expect(toPlain(lr.root)).toMatchObject({ step_size: 10, gamma: 0.5, base_lrs: [0.001] });
    await lr.close();
    const sm = await openWeights(join(dir, 'sampler'));
    expect(sm.tensors.size).toBe(0);
    expect(sm.extras['']).toEqual({ seed: 42, epoch: 1, last_micro_batch_access_index: 800 });
    await sm.close();
  });

  it('refuses os.system (posix.system) and builtins.eval, naming the global, and runs nothing', async () => {
    rmSync('/tmp/sorac-pwned', { force: true });
    await expectWeightsError(openWeights(join(FIX, 'torch/malicious.pt')), 'SORA5003', /posix\.system/);
    await expectWeightsError(openWeights(join(FIX, 'torch/malicious_eval.pt')), 'SORA5003', /builtins\.eval/);
    expect(existsSync('/tmp/sorac-pwned')).toBe(false);
  });

  it('legacy (non-zip) torch files are refused with the conversion hint', async () => {
    expect(await sniffFile(join(FIX, 'torch/sd_legacy.pt'))).toBe('torch-legacy');
    await expectWeightsError(openWeights(join(FIX, 'torch/sd_legacy.pt')), 'SORA5004', /torch\.save\(torch\.load/);
  });

  it('a truncated zip (no central directory) is a typed SORA5005 error', async () => {
    const p = join(tmp, 'trunc.pt');
    copyFileSync(join(FIX, 'torch/sd_zip.pt'), p);
    truncateSync(p, 1500);
    await expectWeightsError(openWeights(p), 'SORA5005', /central directory/);
  });

  it('random byte mutations of a torch zip are read or rejected with a typed error, never a crash', async () => {
    const orig = readFileSync(join(FIX, 'torch/sd_zip.pt'));
    let i = 0;
    await fc.assert(
      fc.asyncProperty(fc.nat(orig.length - 1), fc.integer({ min: 0, max: 255 }), async (pos, byte) => {
        const b = Buffer.from(orig);
        b[pos] = byte;
        const p = join(tmp, `m${i++}.pt`);
        writeFileSync(p, b);
        try {
          const s = await openWeights(p);
          try {
            for (const t of s.tensors.values()) expect((await t.read()).length).toBe(t.byteLength);
          } finally {
            await s.close();
          }
        } catch (e) {
          if (!(e instanceof SoracError)) throw e;
        } finally {
          rmSync(p, { force: true });
        }
      }),
      { numRuns: 250 },
    );
  });
});

describe('ColossalAI safetensors with pickled non-tensor values', () => {
  it('decodes non_tensor_keys (protocol-4 pickles: FRAME, MEMOIZE, SHORT_BINUNICODE) into extras', async () => {
    const s = await openWeights(join(FIX, 'colossal_optim/optimizer-00001.safetensors'));
    expect([...s.tensors.keys()]).toEqual(['state.0.exp_avg']);
    expect(s.extras['state.0.step']).toBe(7);
    expect(s.extras.param_groups).toEqual([{ lr: 1e-4, betas: [0.9, 0.999], params: [0] }]);
    expect(s.notes.join()).toMatch(/decoded 2 pickled non-tensor value/);
    await s.close();
  });
});

describe('restricted unpickler', () => {
  it('accepts torch.Size values (kept as plain data)', async () => {
    const s = await openWeights(join(FIX, 'torch/with_size.pt'));
    expect([...s.tensors.keys()]).toEqual(['weight']);
    expect(s.extras.shape).toEqual([2, 3]);
    await s.close();
  });
  it('torch >= 2 _rebuild_from_type_v2 for Parameter / Tensor types; other subclasses are refused by name', () => {
    const G = (m: string, n: string) => [0x63, ...Buffer.from(`${m}\n${n}\n`, 'latin1')];
    const U = (s: string) => [0x58, s.length, 0, 0, 0, ...Buffer.from(s, 'latin1')];
    const storage = { kind: 'storage', key: '0', dtype: 'f32', className: 'torch.FloatStorage', location: 'cpu', numel: 4 } as const;
    const prog = (typeMod: string, typeName: string) =>
      new Uint8Array([
        0x80, 2,
        ...G('torch._tensor', '_rebuild_from_type_v2'),
        0x28, // MARK (outer args)
        ...G('torch._utils', '_rebuild_tensor_v2'),
        ...G(typeMod, typeName),
        0x28, // MARK (inner args)
        ...U('pid'), 0x51, // BINPERSID → storage
        0x4b, 0, // offset 0
        0x4b, 4, 0x85, // size (4,)
        0x4b, 1, 0x85, // stride (1,)
        0x89, // requires_grad False
        0x7d, // backward hooks
        0x74, // TUPLE (inner args)
        0x7d, // state
        0x74, // TUPLE (outer args)
        0x52, // REDUCE
        0x2e,
      ]);
    const t = unpickle(prog('torch.nn.parameter', 'Parameter'), { persistentLoad: () => storage }) as unknown as { kind: string; shape: number[]; parameter: boolean };
    expect(t).toMatchObject({ kind: 'tensor', shape: [4], parameter: true });
    expect(() => unpickle(prog('mylib', 'EvilTensor'), { persistentLoad: () => storage })).toThrow(/mylib\.EvilTensor/);
  });

  it('refuses opcodes outside the allow-list (INST, OBJ, EXT1)', () => {
    for (const op of [0x69, 0x6f, 0x82]) expect(() => unpickle(new Uint8Array([0x80, 2, op, 0, 0, 0x2e]))).toThrow(PickleError);
  });
  it('a STACK_GLOBAL outside the allow-list is an inert marker (never called); one that runs code is refused', () => {
    const g = (mod: string, name: string) => Buffer.from('800495' + '0000000000000000' + '8c' + mod.length.toString(16).padStart(2, '0') + Buffer.from(mod).toString('hex') + '8c' + name.length.toString(16).padStart(2, '0') + Buffer.from(name).toString('hex') + '932e', 'hex');
    expect(unpickle(g('argparse', 'Namespace'))).toEqual({ kind: 'global', name: 'argparse.Namespace', inert: true });
    for (const [m, n] of [['subprocess', 'Popen'], ['builtins', 'exec'], ['operator', 'attrgetter'], ['importlib', 'import_module']]) expect(() => unpickle(g(m!, n!))).toThrow(new RegExp(`${m}\\.${n}`));
  });
  it('refuses STACK_GLOBAL to code-running names (protocol 4 pickles)', () => {
    // \x80\x04 \x8c\x02os \x8c\x06system \x93 .
    const b = Buffer.from('800495' + '0000000000000000' + '8c02' + Buffer.from('os').toString('hex') + '8c06' + Buffer.from('system').toString('hex') + '932e', 'hex');
    expect(() => unpickle(b)).toThrow(/os\.system/);
  });
  it('random bytes never crash or hang: a value or a PickleError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
        try {
          unpickle(b, { persistentLoad: () => null });
        } catch (e) {
          if (!(e instanceof PickleError) && !(e instanceof LimitError)) throw e;
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('restricted unpickler: hostile structure', () => {
  it('self-referencing containers (a list holding itself twice) load, reported as extras (a hang would hit the test timeout)', async () => {
    const s = await openWeights(join(FIX, 'torch/cyclic.pt'));
    expect([...s.tensors.keys()]).toEqual(['weight']);
    expect(JSON.stringify(s.extras.loop)).toMatch(/<cycle>/);
    await s.close();
  });

  it('deeply nested tuples as dict keys are a typed error (the nesting limit), not a stack overflow', () => {
    const depth = 200_000;
    const b = Buffer.alloc(2 + 1 + 1 + depth + 2 + 2);
    let i = 0;
    b[i++] = 0x80; b[i++] = 2; // PROTO 2
    b[i++] = 0x7d; // EMPTY_DICT
    b[i++] = 0x4e; // NONE
    for (let k = 0; k < depth; k++) b[i++] = 0x85; // TUPLE1 (nest)
    b[i++] = 0x4e; // value
    b[i++] = 0x73; // SETITEM
    b[i++] = 0x2e; // STOP
    expect(() => unpickle(b.subarray(0, i))).toThrow(expect.objectContaining({ name: 'LimitError', limit: 'nestingDepth', code: 'SORA5030' }));
  });
  it('nested tuples as a dict key under the nesting limit are a PickleError', () => {
    const b = Buffer.from([0x80, 2, 0x7d, 0x4e, 0x85, 0x85, 0x4e, 0x73, 0x2e]);
    expect(() => unpickle(b)).toThrow(PickleError);
  });
});

describe('restricted unpickler: structured fuzzing', () => {
  const g = (s: string) => [...Buffer.from(s, 'latin1')];
  const OPS: fc.Arbitrary<readonly number[]>[] = [
    fc.constant([0x80, 2]),
    ...[0x7d, 0x5d, 0x29, 0x4e, 0x88, 0x89, 0x28, 0x74, 0x75, 0x73, 0x61, 0x65, 0x85, 0x86, 0x87, 0x52, 0x62, 0x30, 0x32, 0x94, 0x51, 0x8f, 0x90, 0x91, 0x31, 0x6c, 0x64, 0x81].map((o) => fc.constant([o])),
    fc.integer({ min: 0, max: 255 }).map((n) => [0x4b, n]),
    fc.integer({ min: 0, max: 8 }).map((n) => [0x71, n]),
    fc.integer({ min: 0, max: 8 }).map((n) => [0x68, n]),
    fc.string({ maxLength: 6 }).map((s) => { const b = Buffer.from(s, 'utf8'); return [0x58, b.length, 0, 0, 0, ...b]; }),
    fc.double().map((d) => { const b = Buffer.alloc(8); b.writeDoubleBE(d); return [0x47, ...b]; }),
    fc.uint8Array({ maxLength: 9 }).map((b) => [0x8a, b.length, ...b]),
    fc.constant([0x63, ...g('collections\nOrderedDict\n')]),
    fc.constant([0x63, ...g('torch._utils\n_rebuild_tensor_v2\n')]),
    fc.constant([0x63, ...g('torch\nFloatStorage\n')]),
    fc.constant([0x63, ...g('builtins\nset\n')]),
    fc.constant([0x63, ...g('_codecs\nencode\n')]),
    fc.constant([0x95, 8, 0, 0, 0, 0, 0, 0, 0]),
  ];
  it('random opcode programs: a value or a PickleError, never another exception', () => {
    const storage = { kind: 'storage', key: '0', dtype: 'f32', className: 'torch.FloatStorage', location: 'cpu', numel: 4 } as const;
    fc.assert(
      fc.property(fc.array(fc.oneof(...OPS), { maxLength: 40 }), fc.boolean(), (prog, stop) => {
        const bytes = new Uint8Array([...prog.flat(), ...(stop ? [0x2e] : [])]);
        try {
          const v = unpickle(bytes, { persistentLoad: () => storage });
          toPlain(v);
        } catch (e) {
          if (!(e instanceof PickleError)) throw e;
        }
      }),
      { numRuns: 5000 },
    );
  });
});
