/** CLI behaviour on good and bad input: exit codes, clear errors, never a stack trace. */
import { mkdtempSync, readFileSync, writeFileSync, existsSync, chmodSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../cli/main.ts';
import { memoryIO } from '../cli/io.ts';

async function sorac(...args: string[]) {
  const io = memoryIO();
  const code = await main(args, io);
  return { code, out: io.out, err: io.err };
}

const tmp = () => mkdtempSync(join(tmpdir(), 'sorac-cli-'));
const noStack = (s: string) => expect(s).not.toMatch(/\n\s+at .*\.(ts|js):\d+/);

describe('sorac check', () => {
  it('accepts the bundled STDiT3 at its released config', async () => {
    const r = await sorac('check', 'examples/stdit3.sora');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/ok: STDiT3 v1\.2: 973 tensors, 1,207,643,972 parameters/);
  });

  it('reports an unknown --set key with a did-you-mean, exit 1', async () => {
    const r = await sorac('check', 'examples/stdit3.sora', '--set', 'num_head=4');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/SORA2005.*no config key "num_head"/);
    expect(r.err).toMatch(/did you mean "num_heads"/);
  });

  it('rejects a malformed --set as a usage error', async () => {
    const r = await sorac('check', 'examples/stdit3.sora', '--set', 'depth');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/expected key=value/);
  });

  it('rejects a wrongly typed --set value', async () => {
    const r = await sorac('check', 'examples/stdit3.sora', '--set', 'depth="deep"');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/SORA7003/);
  });

  it('warns about (but accepts) unknown keys in a --config file, e.g. an HF config.json', async () => {
    const d = tmp();
    const cfg = join(d, 'config.json');
    writeFileSync(cfg, JSON.stringify({ architectures: ['STDiT3'], torch_dtype: 'float32', enable_flash_attn: true, hidden_size: 64, num_heads: 4, depth: 2, model_type: 'STDiT3' }));
    const r = await sorac('check', 'examples/stdit3.sora', '--config', cfg);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/SORA7004.*ignoring 2 keys.*architectures, model_type\n/);
    // torch_dtype is an upstream parameter STDiT3 fixes (the dtype policy decides): an info line, not a warning
    expect(r.err).toMatch(/SORA7011.*ignoring torch_dtype="float32"/);
    expect(r.out).toMatch(/ok: STDiT3/);
  });

  it('refuses an upstream parameter the model does not honour (SORA7011, naming it and the reason)', async () => {
    const r = await sorac('check', 'examples/sd_vae.sora', '--set', 'use_quant_conv=false');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/error SORA7011: --set use_quant_conv: use_quant_conv=false is an upstream parameter that AutoencoderKL refuses: AutoencoderKL without quant_conv/);
  });

  it('reports invalid JSON in --config', async () => {
    const d = tmp();
    writeFileSync(join(d, 'c.json'), '{ depth: 4 ');
    const r = await sorac('check', 'examples/stdit3.sora', '--config', join(d, 'c.json'));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/not valid JSON/);
    noStack(r.err);
  });

  it('reports a missing file', async () => {
    const r = await sorac('check', 'nope/missing.sora');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/cannot read nope\/missing.sora: no such file/);
    noStack(r.err);
  });

  // root can read a mode-000 file, so this case only means something for other users
  it.skipIf(process.getuid?.() === 0)('reports an unreadable file', async () => {
    const d = tmp();
    const f = join(d, 'm.sora');
    writeFileSync(f, 'model M {}');
    chmodSync(f, 0o000);
    const r = await sorac('check', f);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/cannot read/);
  });

  it('reports a directory given as the model', async () => {
    const r = await sorac('check', 'examples');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/is a directory/);
  });

  it('refuses binary garbage without a stack trace', async () => {
    const d = tmp();
    const f = join(d, 'garbage.sora');
    const buf = Buffer.alloc(4096);
    for (let i = 0; i < buf.length; i++) buf[i] = (i * 7919 + 13) % 256;
    writeFileSync(f, buf);
    const r = await sorac('check', f);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/binary file|not valid UTF-8/);
    noStack(r.err);
  });

  it('refuses a 10 MB source with a clear error', async () => {
    const d = tmp();
    const f = join(d, 'big.sora');
    writeFileSync(f, '# padding\n'.repeat(1024 * 1024));
    const r = await sorac('check', f);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/SORA1004.*limit/);
    noStack(r.err);
  });

  it('refuses deep nesting with a clear error', async () => {
    const d = tmp();
    const f = join(d, 'deep.sora');
    writeFileSync(f, `model M {\n  let x = ${'['.repeat(100000)}${']'.repeat(100000)}\n}\n`);
    const r = await sorac('check', f);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/SORA1004.*nested/);
    noStack(r.err);
  });

  it('prints machine-readable diagnostics with --json', async () => {
    const r = await sorac('check', 'tests/cases/nondivisible-heads/input.sora', '--json');
    expect(r.code).toBe(1);
    const j = JSON.parse(r.out);
    expect(j.ok).toBe(false);
    expect(j.diagnostics[0].code).toBe('SORA3003');
    expect(j.diagnostics[0].span.file).toBe('std/nn.sora');
    expect(j.diagnostics[0].related.length).toBeGreaterThanOrEqual(2);
  });
});

describe('sorac build', () => {
  it('writes a canonical keymap and one ONNX per entry, byte-identical across runs', async () => {
    const a = tmp();
    const b = tmp();
    const args = ['examples/stdit3.sora', '--set', 'hidden_size=64', '--set', 'depth=2', '--set', 'num_heads=4'];
    expect((await sorac('build', ...args, '-o', a)).code).toBe(0);
    expect((await sorac('build', ...args, '-o', b)).code).toBe(0);
    const files = readdirSync(a).sort();
    expect(files).toEqual(['STDiT3.keymap.json', 'STDiT3.onnx']);
    for (const f of files) expect(readFileSync(join(a, f)).equals(readFileSync(join(b, f)))).toBe(true);
    const km = JSON.parse(readFileSync(join(a, 'STDiT3.keymap.json'), 'utf8'));
    expect(km.contract).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(km.tensors['x_embedder.proj.weight']).toEqual({ dtype: 'f32', kind: 'param', shape: [64, 4, 1, 2, 2], source: 'std/nn.sora:53:3', via: `examples/stdit3.sora:${lineOf('examples/stdit3.sora', '  x_embedder = PatchEmbed3D(')}:3` });
    expect(Object.keys(km.tensors)).toEqual([...Object.keys(km.tensors)].sort());
  });

  it('writes nothing when the model has errors', async () => {
    const d = tmp();
    const r = await sorac('build', 'tests/cases/matmul-mismatch/input.sora', '-o', join(d, 'out'));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/nothing was written/);
    expect(existsSync(join(d, 'out'))).toBe(false);
  });
});

describe('sorac fmt', () => {
  it('--check passes on the bundled sources', async () => {
    const r = await sorac('fmt', '--check', 'std/nn.sora', 'examples/stdit3.sora');
    expect(r.code).toBe(0);
  });
  it('rewrites an unformatted file and is then stable', async () => {
    const d = tmp();
    const f = join(d, 'm.sora');
    writeFileSync(f, 'model M{config{dim:int=8}\nparam w:[dim,dim]}');
    expect((await sorac('fmt', '--check', f)).code).toBe(1);
    expect((await sorac('fmt', f)).code).toBe(0);
    expect(readFileSync(f, 'utf8')).toBe('model M {\n  config {\n    dim: int = 8\n  }\n  param w: [dim, dim]\n}\n');
    expect((await sorac('fmt', '--check', f)).code).toBe(0);
  });
  it('leaves a file with syntax errors untouched', async () => {
    const d = tmp();
    const f = join(d, 'm.sora');
    writeFileSync(f, 'model M { param w: [1, }');
    const r = await sorac('fmt', f);
    expect(r.code).toBe(1);
    expect(readFileSync(f, 'utf8')).toBe('model M { param w: [1, }');
  });
});

describe('--config files in the shapes users have', () => {
  it('reads constructor-style nested kwargs (meta.json constructor_kwargs) like the flat form', async () => {
    const d = tmp();
    const meta = JSON.parse(readFileSync('tests/fixtures/golden/stdit3/a/meta.json', 'utf8'));
    writeFileSync(join(d, 'nested.json'), JSON.stringify(meta.constructor_kwargs));
    writeFileSync(join(d, 'flat.json'), JSON.stringify(meta.constructor_kwargs.STDiT3Config));
    const a = await sorac('check', 'examples/stdit3.sora', '--config', join(d, 'nested.json'), '--json');
    const b = await sorac('check', 'examples/stdit3.sora', '--config', join(d, 'flat.json'), '--json');
    expect(a.code).toBe(0);
    expect(JSON.parse(a.out).contract).toBe(JSON.parse(b.out).contract);
    expect(JSON.parse(a.out).parameters).toBe(meta.num_parameters);
    expect(JSON.parse(a.out).diagnostics.map((x: { code: string }) => x.code)).toContain('SORA7006');
  });
});

describe('hint layout', () => {
  it('a multi-line hint is indented the same in a diagnostic line and in an error that ends a command', async () => {
    const { renderCompact, renderError } = await import('../cli/render.ts');
    const { SoracError } = await import('../core/errors.ts');
    const e = new SoracError('SORA5001', 'x', { hint: 'first\nsecond' });
    const fromError = renderError(e).split('\n').filter((l) => /first|second/.test(l));
    const fromDiag = renderCompact(e.toDiagnostic()).split('\n').filter((l) => /first|second/.test(l));
    expect(fromDiag).toEqual(fromError);
    expect(fromDiag).toEqual(['  hint: first', '        second']);
  });
});

/** 1-based line of the first line of a repository file that starts with `prefix` (keeps span expectations stable). */
function lineOf(file: string, prefix: string): number {
  const i = readFileSync(join(import.meta.dirname, '..', file), 'utf8').split('\n').findIndex((l) => l.startsWith(prefix));
  if (i < 0) throw new Error(`${file}: no line starting with ${prefix}`);
  return i + 1;
}
