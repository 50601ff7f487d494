/**
 * Issue 14 item 1: a hostile migration script is stopped with a clear error and nothing happens.
 * Each attack the audit reproduced (spawn through getBuiltinModule, read a file, write a file, kill
 * the CLI, flood it, allocate or loop without bound) and the sandbox's second layer (the child's
 * Node permission model, tested on its own, without the vm context in front of it).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sandboxNodeFlags } from '../../runtime/migrate/script.ts';
import { cli, tempDir } from './helpers.ts';

const HEAD = "import { migration } from 'sorac/migrate';\n";
const TAIL = "\nexport default migration((m) => m.drop('a'));\n";

function script(body: string, name = 'evil.ts', dir = tempDir()): { path: string; dir: string } {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, name);
  writeFileSync(path, HEAD + body + TAIL);
  return { path, dir };
}

const saved = { ...process.env };
afterEach(() => {
  for (const k of ['SORAC_SCRIPT_TIMEOUT_S', 'SORAC_SCRIPT_MEMORY_MB', 'SORAC_SCRIPT_OUTPUT_MB']) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
});

describe('hostile migration scripts are stopped and nothing happens', () => {
  it('spawning a process through process.getBuiltinModule (the audit reproduction)', async () => {
    const dir = tempDir();
    const { path } = script(`(process as any).getBuiltinModule('child_process').execSync('touch ${join(dir, 'pwned')}');`, 'evil.ts', dir);
    const r = await cli(['migrate', 'plan', path]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/SORA6006: migration script .*evil\.ts failed: process is not defined/);
    expect(existsSync(join(dir, 'pwned'))).toBe(false);
  });

  it('escaping the context through a constructor to reach process, require or eval', async () => {
    const marker = join(tempDir(), 'written');
    for (const body of [
      `(globalThis as any).constructor.constructor('return process')().mainModule.require('fs').writeFileSync(${JSON.stringify(marker)}, 'x');`,
      `Object.getPrototypeOf(async function () {}).constructor('return 1');`,
      `(0, eval)('1');`,
      `new (globalThis as any).SharedArrayBuffer(8);`,
      `(globalThis as any).WebAssembly.compile(new Uint8Array(8));`,
    ]) {
      const r = await cli(['migrate', 'plan', script(body).path]);
      expect(r.code, body).toBe(1);
      expect(r.err, body).toMatch(/SORA6006: .* failed: /);
    }
    expect(existsSync(marker)).toBe(false);
  });

  it('reading /etc/passwd, a non-source file beside it, or a symlink out of its directory', async () => {
    const d = tempDir();
    writeFileSync(join(d, 'secret.txt'), 'secret');
    const outside = tempDir();
    writeFileSync(join(outside, 'lib.ts'), 'export const X = 1;\n');
    symlinkSync(join(outside, 'lib.ts'), join(d, 'lib.ts'));
    for (const [body, refused] of [
      ["import p from '/etc/passwd';\nvoid p;", '/etc/passwd'],
      ["import s from './secret.txt';\nvoid s;", 'secret.txt'],
      ["import { X } from './lib.ts';\nvoid X;", 'lib.ts'],
      ["import { readFileSync } from 'node:fs';\nreadFileSync('/etc/passwd');", 'node:fs'],
    ] as const) {
      const r = await cli(['migrate', 'plan', script(body, 'read.ts', d).path]);
      expect(r.code, body).toBe(1);
      expect(r.err, body).toMatch(new RegExp(`refused "[^"\\n]*${refused.replace('.', '\\.')}"`));
      expect(r.err, body).not.toContain('root:');
      expect(r.err).not.toContain('secret\n');
    }
  });

  it('writing a file', async () => {
    const dir = tempDir();
    const { path } = script(`(globalThis as any).process?.getBuiltinModule('fs').writeFileSync('${join(dir, 'pwned')}', 'x');\nif (!(globalThis as any).process) throw new Error('no process here');`, 'evil.ts', dir);
    const r = await cli(['migrate', 'plan', path]);
    expect(r.code).toBe(1);
    expect(existsSync(join(dir, 'pwned'))).toBe(false);
  });

  it('killing its parent: the CLI survives and reports the script', async () => {
    const r = await cli(['migrate', 'plan', script("(process as any).kill((process as any).ppid, 'SIGKILL');").path]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/SORA6006: .* failed: process is not defined/);
    expect(process.kill(process.pid, 0)).toBe(true); // we are alive
  });

  it('flooding the parent with output is cut at the output limit', async () => {
    process.env.SORAC_SCRIPT_OUTPUT_MB = '1';
    const { path } = script('', 'flood.ts');
    writeFileSync(path, `${HEAD}export default migration((m) => { for (let i = 0; i < 200000; i++) m.drop('k' + i); return m; });\n`);
    const r = await cli(['migrate', 'plan', path]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/SORA6020: migration script .*flood\.ts was stopped: it produced more than 1 MiB of output; nothing it did was kept/);
    expect(r.err).toContain('SORAC_SCRIPT_OUTPUT_MB');
  });

  it('allocating without bound is stopped at the memory limit', async () => {
    process.env.SORAC_SCRIPT_MEMORY_MB = '64';
    const r = await cli(['migrate', 'plan', script("const a: unknown[] = [];\nfor (;;) a.push({ s: 'x'.repeat(64) + a.length });", 'alloc.ts').path]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/SORA6020: .*alloc\.ts was stopped: it used more than its memory limit \(64 MiB heap\)/);
    expect(r.err).toContain('SORAC_SCRIPT_MEMORY_MB');
  }, 30_000);

  it('looping forever is stopped at the time limit, also in a promise job and in the plan builder', async () => {
    process.env.SORAC_SCRIPT_TIMEOUT_S = '1';
    for (const body of ['for (;;) {}', 'Promise.resolve().then(() => { for (;;) {} });']) {
      const r = await cli(['migrate', 'plan', script(body, 'loop.ts').path]);
      expect(r.code, body).toBe(1);
      expect(r.err, body).toMatch(/SORA6020: .*loop\.ts was stopped: it ran longer than 1 s/);
      expect(r.err).toContain('SORAC_SCRIPT_TIMEOUT_S');
    }
  }, 30_000);

  it('a syntax error is shown as a code frame, not an esbuild stack', async () => {
    const r = await cli(['migrate', 'plan', script('const a b = 1;', 'syntax.ts').path]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/SORA6006: migration script .*syntax\.ts does not compile:\n.*syntax\.ts:2:9: Expected ";" but found "b"\n {2}2 \| const a b = 1;\n {4}\| {9}\^/);
    expect(r.err).not.toMatch(/\n\s+at /);
  });

  it('an honest script still works', async () => {
    const r = await cli(['migrate', 'plan', script("const k = ['x', 'y'].map((s) => s + '.weight');\nvoid k;", 'honest.ts').path]);
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out)).toEqual({ format: 'sorac.migration/1', name: 'honest', ops: [{ op: 'drop', key: 'a' }] });
  });
});

describe('the second layer: the child runs under the permission model with no grant', () => {
  const attacks: Record<string, string> = {
    spawn: "require('node:child_process').execSync('true')",
    read: "require('node:fs').readFileSync('/etc/passwd')",
    write: `require('node:fs').writeFileSync(${JSON.stringify('/tmp/sorac-sandbox-probe')}, 'x')`,
    worker: "new (require('node:worker_threads').Worker)('1', { eval: true })",
  };
  for (const [what, code] of Object.entries(attacks)) {
    it(`${what} is denied even to code outside the vm context`, () => {
      const r = spawnSync(process.execPath, [...sandboxNodeFlags(64), '-e', `try { ${code}; console.log('ALLOWED') } catch (e) { console.log(e.code) }`], { encoding: 'utf8', env: {} });
      expect(r.stdout.trim()).toBe('ERR_ACCESS_DENIED');
    });
  }
  it('and no file was written', () => expect(existsSync('/tmp/sorac-sandbox-probe')).toBe(false));
});
