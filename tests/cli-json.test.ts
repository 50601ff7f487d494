/**
 * `--json` prints exactly one JSON document on stdout for every outcome of every command and
 * sub-command, through the built CLI (bin/sorac.js). The commands are enumerated from the commander
 * program itself, so a new command fails this test until it has a success and a failure case here.
 * Every leaf command is also run with --help and with an unknown option (a usage error), both of which
 * must give one document too.
 */
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { memoryIO } from '../cli/io.ts';
import { createProgram } from '../cli/main.ts';
import { ROOT, soracBin } from './helpers/cli.ts';

const T = mkdtempSync(join(tmpdir(), 'sorac-json-'));
afterAll(() => rmSync(T, { recursive: true, force: true }));
const G = join(ROOT, 'tests/fixtures/golden/stdit3/a');
const W = join(G, 'model.safetensors');
const STDIT3 = join(ROOT, 'examples/stdit3.sora');
const EXP = join(ROOT, 'tests/fixtures/training/outputs/000-STDiT3-XL-2');
const CK = 'epoch0-global_step2';
const cfg = ['--config', join(G, 'config.json')];
const missing = join(T, 'does-not-exist');

/** A fresh copy of the training experiment fixture (ckpt commands that write). */
function exp(tag: string): string {
  const d = join(T, `exp-${tag}`);
  rmSync(d, { recursive: true, force: true });
  cpSync(EXP, d, { recursive: true });
  return d;
}
const fresh = (tag: string) => {
  const d = join(T, tag);
  rmSync(d, { recursive: true, force: true });
  mkdirSync(d, { recursive: true });
  return d;
};

/** A small pipeline whose components need no weights for `generate --dry-run`'s failure and a usage failure. */
const badSora = () => {
  const p = join(T, 'bad.sora');
  writeFileSync(p, 'model M version "1" {\n  config { n: int = 1 }\n  entry forward(x: f32[B]) -> (y: f32[B]) { return nope(x) }\n}\n');
  return p;
};

type Case = () => string[];
/** Commands that are not one-shot, so have no one document to print (each with where it is tested). */
const NOT_ONE_SHOT: Record<string, string> = { lsp: 'the language server speaks JSON-RPC on stdio for the editor session (tests/lsp/)' };
/** Per leaf command: argv that succeeds, argv that fails (each without --json, which is appended). */
const CASES: Record<string, { ok: Case | null; okWhy?: string; fail: Case[] }> = {
  build: { ok: () => ['build', STDIT3, ...cfg, '-o', fresh('build')], fail: [() => ['build', missing + '.sora', '-o', fresh('build-f')], () => ['build', badSora(), '-o', fresh('build-d')]] },
  check: { ok: () => ['check', STDIT3, ...cfg], fail: [() => ['check', missing + '.sora'], () => ['check', STDIT3, '--weights', missing], () => ['check', badSora()], () => ['check', STDIT3, '--set', 'num_head=4']] },
  'ckpt ls': { ok: () => ['ckpt', 'ls', EXP], fail: [() => ['ckpt', 'ls', missing]] },
  'ckpt latest': { ok: () => ['ckpt', 'latest', EXP], fail: [() => ['ckpt', 'latest', missing]] },
  'ckpt verify': { ok: () => ['ckpt', 'verify', join(EXP, CK)], fail: [() => ['ckpt', 'verify', missing]] },
  'ckpt manifest': { ok: () => ['ckpt', 'manifest', join(exp('manifest'), CK)], fail: [() => ['ckpt', 'manifest', missing]] },
  'ckpt export': { ok: () => ['ckpt', 'export', join(EXP, CK), '-o', join(fresh('export'), 'w.safetensors')], fail: [() => ['ckpt', 'export', missing, '-o', join(T, 'x.safetensors')]] },
  'ckpt prune': { ok: () => ['ckpt', 'prune', exp('prune'), '--keep', '2', '--dry-run'], fail: [() => ['ckpt', 'prune', missing, '--keep', '1']] },
  detect: { ok: () => ['detect', W], fail: [() => ['detect', missing]] },
  doctor: { ok: () => ['doctor', '--no-smoke', '--no-hash'], fail: [() => ['doctor', '--device-id', 'first']] },
  fmt: { ok: () => ['fmt', '--check', STDIT3], fail: [() => ['fmt', missing + '.sora'], () => ['fmt', '--stdout', badSyntax()], () => ['fmt', '--check', unformatted()]] },
  generate: { ok: () => ['generate', join(ROOT, 'examples/tiny-pipeline/pipeline.sora'), '-p', 'a red ball moving right', '--steps', '4', '-o', join(fresh('generate'), 'v.mp4')], fail: [() => ['generate', missing + '.sora', '-p', 'a cat', '-o', join(T, 'v.mp4')], () => ['generate', STDIT3, '-p', 'a cat', '-o', join(T, 'v.mp4'), '--dry-run']] },
  inspect: { ok: () => ['inspect', W], fail: [() => ['inspect', missing]] },
  'migrate list': { ok: () => ['migrate', 'list'], fail: [() => ['migrate', 'list', 'extra-arg']] },
  'migrate diff': { ok: () => ['migrate', 'diff', W, join(G, 'model.bf16.safetensors')], fail: [() => ['migrate', 'diff', W, missing], () => ['migrate', 'diff', STDIT3, W, '--from-set', 'num_head=4']] },
  'migrate new': { ok: () => ['migrate', 'new', W, join(G, 'model.bf16.safetensors'), '-o', join(fresh('new'), 'm.ts')], fail: [() => ['migrate', 'new', W, missing, '-o', join(T, 'm2.ts')]] },
  'migrate plan': { ok: () => ['migrate', 'plan', 'caption-table-resize', '--in', W, '--param', 'rows=4'], fail: [() => ['migrate', 'plan', 'no-such-migration', '--in', W]] },
  'migrate apply': { ok: () => ['migrate', 'apply', 'caption-table-resize', '--param', 'rows=4', '--in', W, '--out', join(fresh('apply'), 'o.safetensors')], fail: [() => ['migrate', 'apply', 'caption-table-resize', '--param', 'rows=4', '--in', missing, '--out', join(T, 'o2.safetensors')]] },
  run: {
    ok: () => ['run', STDIT3, ...cfg, '-w', W, '-i', join(G, 'inputs.safetensors'), '-o', join(fresh('run'), 'o.safetensors'), '--device', 'cpu'],
    fail: [
      () => ['run', STDIT3, ...cfg, '-w', W, '-i', W, '-o', join(T, 'o.safetensors'), '--device', 'cpu'],
      () => ['run', STDIT3, ...cfg, '-w', missing, '-i', join(G, 'inputs.safetensors'), '-o', join(T, 'o.safetensors'), '--device', 'cpu'],
      () => ['run', STDIT3, '--set', 'num_head=4', '-w', W, '-i', join(G, 'inputs.safetensors'), '-o', join(T, 'o.safetensors')],
    ],
  },
  setup: { ok: null, okWhy: 'installing needs the pinned 179 MB provider package (network): tests/devices/setup.test.ts (SORAC_TEST_NETWORK=1)', fail: [() => ['setup', 'cuda', '--from', missing + '.tgz', '--cache-dir', fresh('setup'), '--no-verify'], () => ['setup', 'tensorrt']] },
  verify: { ok: () => ['verify', W], fail: [() => ['verify', missing]] },
};

function unformatted(): string {
  const p = join(T, 'unformatted.sora');
  writeFileSync(p, 'model M version "1" {\n  config {   n: int = 1 }\n}\n');
  return p;
}

function badSyntax(): string {
  const p = join(T, 'syntax.sora');
  writeFileSync(p, 'model M {\n  config { n: int = }\n');
  return p;
}

/** Every leaf command of the program, as its path ("ckpt ls"). */
function leaves(cmd: Command, prefix: string[] = []): string[] {
  return cmd.commands.flatMap((c) => {
    const path = [...prefix, c.name()];
    return c.commands.length ? leaves(c, path) : [path.join(' ')];
  });
}
const program = await createProgram(memoryIO(), () => {});
const LEAVES = leaves(program);

/** Exactly one JSON document on stdout (JSON.parse rejects a second one or stray text). */
function oneDocument(out: string, what: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(out);
  } catch (e) {
    throw new Error(`${what}: stdout is not exactly one JSON document (${(e as Error).message}):\n${out.slice(0, 2000)}`);
  }
  expect(doc, what).toBeTypeOf('object');
  expect(doc, what).not.toBeNull();
  return doc as Record<string, unknown>;
}

describe('--json: one JSON document on stdout for every outcome of every command', () => {
  it('the enumeration finds every command, and each has cases here', () => {
    expect(LEAVES).toEqual(expect.arrayContaining(['check', 'build', 'run', 'fmt', 'ckpt export', 'migrate apply', 'setup', 'doctor', 'verify', 'inspect', 'generate']));
    expect(LEAVES.filter((l) => !CASES[l] && !NOT_ONE_SHOT[l])).toEqual([]);
    expect(Object.keys(CASES).filter((k) => !LEAVES.includes(k))).toEqual([]);
  });

  it('every leaf command documents --json in its help', () => {
    for (const l of LEAVES.filter((x) => !NOT_ONE_SHOT[x])) {
      const c = l.split(' ').reduce((cmd: Command, n) => cmd.commands.find((x) => x.name() === n)!, program);
      expect(c.options.map((o) => o.long), l).toContain('--json');
    }
  });

  for (const leaf of Object.keys(CASES)) {
    const c = CASES[leaf]!;
    describe(leaf, () => {
      it.skipIf(c.ok === null)(`succeeds with one document${c.ok === null ? ` (skipped: ${c.okWhy})` : ''}`, () => {
        const args = [...c.ok!(), '--json'];
        const r = soracBin(args, { cwd: T });
        const doc = oneDocument(r.out, `${args.join(' ')} (exit ${r.code}; stderr ${r.err.slice(0, 500)})`);
        // doctor reports whether CUDA works here: exit 1 with ok: false is its success on a machine without a GPU
        if (leaf !== 'doctor') expect(r.code, r.err).toBe(0);
        if ('ok' in doc && leaf !== 'doctor') expect(doc.ok).toBe(true);
      });
      c.fail.forEach((f, i) =>
        it(`fails with one { ok: false, diagnostics } document (case ${i + 1})`, () => {
          const args = [...f(), '--json'];
          const r = soracBin(args, { cwd: T });
          expect(r.code, `${args.join(' ')}: ${r.out}`).not.toBe(0);
          expect(r.code).not.toBe(70);
          const doc = oneDocument(r.out, `${args.join(' ')} (exit ${r.code}; stderr ${r.err.slice(0, 500)})`);
          expect(doc.ok).toBe(false);
          expect(Array.isArray(doc.diagnostics), JSON.stringify(doc).slice(0, 500)).toBe(true);
          // a file that is merely not formatted is a status, not a diagnostic
          if (!(leaf === 'fmt' && i === 2)) expect((doc.diagnostics as unknown[]).length, JSON.stringify(doc).slice(0, 500)).toBeGreaterThan(0);
          else expect(doc.files).toEqual([{ file: 'unformatted.sora', status: 'not formatted' }]);
        }),
      );
      it('--help and an unknown option give one document too', () => {
        const words = leaf.split(' ');
        const h = soracBin([...words, '--help', '--json'], { cwd: T });
        expect(h.code).toBe(0);
        expect(oneDocument(h.out, `${leaf} --help --json`)).toMatchObject({ ok: true, help: expect.stringContaining(`sorac ${leaf}`) });
        const u = soracBin([...words, '--no-such-option', '--json'], { cwd: T });
        expect(u.code).toBe(2);
        expect(oneDocument(u.out, `${leaf} --no-such-option --json`)).toMatchObject({ ok: false, error: { code: 'SORA7007' }, diagnostics: [{ code: 'SORA7007' }] });
      });
    });
  }

  it('sorac --version --json and a bare unknown command', () => {
    expect(oneDocument(soracBin(['--version', '--json']).out, 'version')).toEqual({ ok: true, version: expect.any(String) });
    const u = soracBin(['no-such-command', '--json']);
    expect(u.code).toBe(2);
    expect(oneDocument(u.out, 'unknown command')).toMatchObject({ ok: false, error: { code: 'SORA7007' } });
  });
});
