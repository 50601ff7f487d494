/**
 * Hostile `.sora` sources, configs and `--set` values (issue 14, items 7, 10, 12): each ends in a
 * typed diagnostic or error that names what to change, in bounded time, never a stack trace.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildModel } from '../../api/build.ts';
import { checkModel, loadModel } from '../../api/model.ts';
import { SoracError } from '../../core/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'sorac-hostile-src-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const ROOT = join(import.meta.dirname, '..', '..');

let n = 0;
/** Compile and check a source; the codes of every error diagnostic, or the thrown SoracError's code. */
export async function codesOf(src: string, opts: { set?: [string, string][]; config?: unknown; file?: string } = {}): Promise<{ codes: string[]; messages: string }> {
  const file = opts.file ?? join(dir, `m${n++}.sora`);
  if (!opts.file) writeFileSync(file, src);
  let configPath: string | undefined;
  if (opts.config !== undefined) {
    configPath = join(dir, `c${n++}.json`);
    writeFileSync(configPath, typeof opts.config === 'string' ? opts.config : JSON.stringify(opts.config));
  }
  try {
    const m = loadModel({ file, cwd: dir, ...(opts.set ? { set: opts.set } : {}), ...(configPath ? { configPath } : {}) });
    const r = await checkModel(m);
    const errs = r.diagnostics.filter((d) => d.severity === 'error');
    return { codes: errs.map((d) => d.code), messages: errs.map((d) => `${d.message}\n${d.hint ?? ''}`).join('\n') };
  } catch (e) {
    if (!(e instanceof SoracError)) throw e;
    return { codes: [e.code], messages: `${e.message}\n${e.hint ?? ''}` };
  }
}

const tiny = (body: string, config = 'dim: int = 8') => `model M {\n  config {\n    ${config}\n  }\n${body}\n}\n`;
const ok = tiny('  entry forward(x: f32[B, dim]) -> (y: f32[B, dim]) {\n    return x\n  }');

describe('hostile sources and configs', () => {
  it('an expression of 10,000 terms is SORA1030 naming the limit, not a stack overflow', async () => {
    const terms = Array(10_000).fill('1').join('+');
    const r = await codesOf(tiny(`  entry forward(x: f32[B, dim]) -> (y: f32[B, dim]) {\n    let k = ${terms}\n    return x * k\n  }`));
    expect(r.codes).toContain('SORA1030');
    expect(r.messages).toMatch(/SORAC_MAX_EXPR_DEPTH/);
  });

  it('an expression at the limit (1,000 terms) still compiles and checks', async () => {
    const terms = Array(1000).fill('1').join('+');
    const r = await codesOf(tiny(`  entry forward(x: f32[B, dim]) -> (y: f32[B, dim]) {\n    let k = ${terms}\n    return x * k\n  }`));
    expect(r.codes).toEqual([]);
  });

  it('chains without binary operators (unary, member, call, index) are typed errors too', async () => {
    for (const e of ['-'.repeat(20_000) + '1', 'x' + '.a'.repeat(20_000), 'f' + '()'.repeat(20_000), 'x' + '[0]'.repeat(20_000)]) {
      const r = await codesOf(tiny(`  entry forward(x: f32[B, dim]) -> (y: f32[B, dim]) {\n    let k = ${e}\n    return x\n  }`));
      expect(r.codes.some((c) => c === 'SORA1030' || c === 'SORA1002'), r.codes.join()).toBe(true);
    }
  });

  it('a negative size in rearrange is refused by check (SORA3012) and build does not crash', async () => {
    const src = `model M {\n  config {\n    dim: int = 12\n    heads: int = -2\n  }\n  entry forward(x: f32[B, N, dim]) -> (y: f32[B, N, dim]) {\n    let t = rearrange(x, "B N (h d) -> B h N d", h=heads)\n    return rearrange(t, "B h N d -> B N (h d)")\n  }\n}\n`;
    const r = await codesOf(src);
    expect(r.codes).toContain('SORA3012');
    const file = join(dir, 'neg.sora');
    writeFileSync(file, src);
    const b = await buildModel(loadModel({ file, cwd: dir }), { out: join(dir, 'neg-out') });
    expect(b.ok).toBe(false);
    expect(b.diagnostics.map((d) => d.code)).toContain('SORA3012');
  });

  it('exponential instantiation (21 levels of two copies) stops at the instance limit with SORA3030', async () => {
    let src = 'module L0() {\n  param w: [1]\n}\n';
    for (let l = 1; l <= 21; l++) src += `module L${l}() {\n  a = L${l - 1}()\n  b = L${l - 1}()\n}\n`;
    src += tiny('  top = L21()\n  entry forward(x: f32[B, dim]) -> (y: f32[B, dim]) {\n    return x\n  }');
    const t0 = performance.now();
    const r = await codesOf(src);
    expect(r.codes).toEqual(['SORA3030']);
    expect(r.messages).toMatch(/SORAC_MAX_INSTANCES=/);
    expect(performance.now() - t0).toBeLessThan(30_000);
  });

  it('--set depth=100000 on STDiT3 stops at a check-time limit with SORA3030', async () => {
    const t0 = performance.now();
    const r = await codesOf('', { file: join(ROOT, 'examples', 'stdit3.sora'), set: [['depth', '100000']] });
    expect(r.codes).toEqual(['SORA3030']);
    expect(r.messages).toMatch(/the limit (instances|parameters)/);
    expect(performance.now() - t0).toBeLessThan(60_000);
  });

  it('huge hidden sizes stop at the parameter limit', async () => {
    const r = await codesOf('', { file: join(ROOT, 'examples', 'stdit3.sora'), set: [['hidden_size', '100000000'], ['num_heads', '1']] });
    expect(r.codes).toContain('SORA3030');
    expect(r.messages).toMatch(/SORAC_MAX_PARAMETERS=/);
  });

  it('--set nested 5,000 deep is SORA7030', async () => {
    const deep = '['.repeat(5000) + ']'.repeat(5000);
    const r = await codesOf(ok, { set: [['dim', deep]] });
    expect(r.codes).toEqual(['SORA7030']);
    expect(r.messages).toMatch(/nestingDepth/);
  });

  it('--config nested 5,000 deep is SORA7030', async () => {
    const r = await codesOf(ok, { config: `{"dim": ${'['.repeat(5000)}${']'.repeat(5000)}}` });
    expect(r.codes).toEqual(['SORA7030']);
    expect(r.messages).toMatch(/SORAC_MAX_NESTING/);
  });

  it('--config {"dim": 1e308} and --set dim=2^53+1 are refused, not "∞ parameters" or rounded', async () => {
    let r = await codesOf(ok, { config: '{"dim": 1e308}' });
    expect(r.codes).toEqual(['SORA7030']);
    expect(r.messages).toMatch(/not an exact integer/);
    r = await codesOf(ok, { set: [['dim', '9007199254740993']] });
    expect(r.codes).toEqual(['SORA7030']);
    r = await codesOf(ok, { set: [['dim', '9007199254740991']] });
    expect(r.codes).not.toContain('SORA7030');
  });

  it('a float config may hold a large integral value', async () => {
    const r = await codesOf(tiny('  entry forward(x: f32[B, dim]) -> (y: f32[B, dim]) {\n    return x * scale\n  }', 'dim: int = 8\n    scale: float = 1.0'), { set: [['scale', '1e20']] });
    expect(r.codes).toEqual([]);
  });
});

describe('.sora imports stay inside the project, std and SORAC_PATH', () => {
  const proj = join(dir, 'proj');
  const other = join(dir, 'elsewhere');
  mkdirSync(join(proj, 'models'), { recursive: true });
  mkdirSync(other, { recursive: true });
  writeFileSync(join(proj, 'package.json'), '{}');
  writeFileSync(join(proj, 'blocks.sora'), 'module Blk(d: int) {\n  param w: [d]\n}\n');
  writeFileSync(join(other, 'lib.sora'), 'module L(d: int) {\n  param w: [d]\n}\n');
  const model = (imp: string) => `import { ${imp.split('|')[0]} } from "${imp.split('|')[1]}"\n` + tiny(`  b = ${imp.split('|')[0]}(dim)\n  entry forward(x: f32[B, dim]) -> (y: f32[B, dim]) {\n    return x\n  }`);
  const at = (name: string, src: string) => {
    const f = join(proj, 'models', name);
    writeFileSync(f, src);
    return f;
  };

  it('an absolute import of /dev/zero is SORA2030 and reads nothing', async () => {
    const t0 = performance.now();
    const r = await codesOf('', { file: at('zero.sora', model('Z|/dev/zero')) });
    expect(r.codes).toEqual(['SORA2030']);
    expect(r.messages).toMatch(/SORAC_PATH/);
    expect(performance.now() - t0).toBeLessThan(10_000);
  });

  it('../.. out of the project and std/../.. are SORA2030; ../ inside the project is fine', async () => {
    expect((await codesOf('', { file: at('up.sora', model('L|../../elsewhere/lib')) })).codes).toEqual(['SORA2030']);
    expect((await codesOf('', { file: at('std.sora', model('L|std/../../../../etc/passwd')) })).codes).toEqual(['SORA2030']);
    expect((await codesOf('', { file: at('in.sora', model('Blk|../blocks')) })).codes).toEqual([]);
  });

  it('a symlink inside the project that leads out is SORA2030', async () => {
    symlinkSync(join(other, 'lib.sora'), join(proj, 'link.sora'));
    expect((await codesOf('', { file: at('link.sora', model('L|../link')) })).codes).toEqual(['SORA2030']);
  });

  it('SORAC_PATH admits another folder', async () => {
    const prev = process.env.SORAC_PATH;
    process.env.SORAC_PATH = other;
    try {
      expect((await codesOf('', { file: at('path.sora', model('L|../../elsewhere/lib')) })).codes).toEqual([]);
    } finally {
      if (prev === undefined) delete process.env.SORAC_PATH;
      else process.env.SORAC_PATH = prev;
    }
  });
});
