/**
 * Property fuzzing (fast-check) of every reader of untrusted input: safetensors, torch zip, the
 * pickle interpreter, sharded indexes, the hub cache resolver, `sorac verify`, the `.sora` parser
 * and compiler, config files and `--set`. Inputs are generated structurally (headers, pickles,
 * zips, cache layouts, token soups) and by mutating valid seeds; every run must end in success or
 * a typed error (a SoracError), never an untyped exception (exit 70), and within a time bound.
 *
 * CI runs a short budget per reader (SORAC_FUZZ_SECONDS, default 3); long runs:
 *   SORAC_FUZZ_MINUTES=10 npx vitest run tests/fuzz/fuzz.test.ts
 * Each reader prints `fuzz <reader>: <runs> runs` (and SORAC_FUZZ_REPORT=FILE appends it as JSON).
 * A failure prints fast-check's seed and shrunk counterexample; replay it with fc's `seed`/`path`.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { checkModel, loadModel } from '../../api/model.ts';
import { openWeights, verifyWeights } from '../../api/weights.ts';
import { SoracError } from '../../core/errors.ts';
import { parse } from '../../grammar/parser.ts';
import { unpickle } from '../../runtime/formats/unpickle.ts';
import { Pickle, safetensors, stateDictPickle, torchZip } from './make-corpus.ts';
import { readAllWeights } from './readers.ts';

const minutes = Number(process.env.SORAC_FUZZ_MINUTES ?? 0);
const BUDGET_MS = minutes > 0 ? minutes * 60_000 : Number(process.env.SORAC_FUZZ_SECONDS ?? 3) * 1000;
/** One input must finish within this (generous for a loaded 2-core machine). */
const RUN_BOUND_MS = 10_000;
const TEST_TIMEOUT = BUDGET_MS + 120_000;

const tmp = mkdtempSync(join(tmpdir(), 'sorac-fuzz-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let seq = 0;
const fresh = (ext = '') => join(tmp, `f${seq++}${ext}`);

/** Run `body` on every generated value for the budget; fail on an untyped exception or a slow run. */
async function fuzz<T>(reader: string, arb: fc.Arbitrary<T>, body: (v: T) => Promise<unknown> | unknown): Promise<void> {
  let runs = 0;
  let typed = 0;
  await fc.assert(
    fc.asyncProperty(arb, async (v) => {
      runs++;
      const t0 = performance.now();
      try {
        await body(v);
      } catch (e) {
        if (!(e instanceof SoracError)) throw e;
        typed++;
      }
      const ms = performance.now() - t0;
      if (ms > RUN_BOUND_MS) throw new Error(`${reader}: one input took ${Math.round(ms)} ms`);
    }),
    { numRuns: Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: BUDGET_MS, markInterruptAsFailure: false, endOnFailure: true },
  );
  const line = `fuzz ${reader}: ${runs} runs (${typed} ended in a thrown typed error, the rest accepted or reported as diagnostics) in ${Math.round(BUDGET_MS / 1000)} s`;
  console.log(line);
  if (process.env.SORAC_FUZZ_REPORT) appendFileSync(process.env.SORAC_FUZZ_REPORT, JSON.stringify({ reader, runs, typed, seconds: BUDGET_MS / 1000 }) + '\n');
  expect(runs).toBeGreaterThan(0);
}

/** Write `bytes` to a fresh file, read every tensor of it through the loader, and check the file was not modified. */
async function readAsFile(bytes: Uint8Array, ext: string): Promise<void> {
  const p = fresh(ext);
  writeFileSync(p, bytes);
  try {
    await readAllWeights(p);
  } finally {
    expect(readFileSync(p).equals(bytes)).toBe(true); // the input is never modified
    rmSync(p, { force: true });
  }
}

/** Mutations of a seed: overwrite bytes, truncate, append. */
function mutated(seed: Buffer): fc.Arbitrary<Buffer> {
  return fc
    .record({
      edits: fc.array(fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }), { maxLength: 8 }),
      cut: fc.option(fc.nat(), { nil: undefined }),
      tail: fc.uint8Array({ maxLength: 16 }),
    })
    .map(({ edits, cut, tail }) => {
      const b = Buffer.from(seed);
      for (const e of edits) b[e.at % b.length] = e.byte;
      const c = cut === undefined ? b : b.subarray(0, cut % (b.length + 1));
      return Buffer.concat([c, tail]);
    });
}

const weird = fc.constantFrom('toString', '__proto__', 'constructor', 'F32', 'U8', 'BF16', 'F4', 'C64', '', 'f32', 'hasOwnProperty', 'valueOf');
const dim = fc.oneof(fc.integer({ min: -3, max: 8 }), fc.constantFrom(2 ** 32, 2 ** 53, 2 ** 53 + 2, 1e300, -0, 0.5));
const headerArb = fc.dictionary(
  fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('__metadata__', '__proto__', 'constructor', 'a\x1b[2J')),
  fc.oneof(
    fc.record({ dtype: fc.oneof(weird, fc.string({ maxLength: 4 })), shape: fc.array(dim, { maxLength: 6 }), data_offsets: fc.array(fc.oneof(fc.nat(64), dim), { maxLength: 3 }) }, { requiredKeys: [] }),
    fc.dictionary(fc.string({ maxLength: 3 }), fc.oneof(fc.string({ maxLength: 3 }), fc.integer())),
    fc.jsonValue({ maxDepth: 3 }),
  ),
  { maxKeys: 6 },
);

describe('fuzz: every reader ends in success or a typed error, in bounded time', () => {
  it(
    'safetensors (generated headers)',
    () =>
      fuzz('safetensors', fc.tuple(headerArb, fc.nat(96), fc.boolean()), ([h, n, bom]) => readAsFile(safetensors(h, n, { bom }), '.safetensors')),
    TEST_TIMEOUT,
  );

  const goodSt = safetensors({ __metadata__: { format: 'pt' }, a: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] }, b: { dtype: 'BF16', shape: [3], data_offsets: [16, 22] } }, 22);
  it(
    'safetensors (mutated)',
    () =>
      fuzz('safetensors-mutated', mutated(goodSt), (b) => readAsFile(b, '.safetensors')),
    TEST_TIMEOUT,
  );

  const viewArb = fc.record({
    numel: fc.integer({ min: 0, max: 64 }),
    shape: fc.array(fc.integer({ min: 0, max: 1 << 12 }), { maxLength: 4 }),
    stride: fc.array(fc.integer({ min: 0, max: 8 }), { maxLength: 4 }),
    offset: fc.integer({ min: 0, max: 16 }),
    bytes: fc.integer({ min: 0, max: 256 }),
    deflate: fc.boolean(),
  });
  it(
    'torch zip (generated views and records)',
    () =>
      fuzz('torch-zip', fc.array(viewArb, { minLength: 1, maxLength: 3 }), async (views) => {
        const pkl = stateDictPickle(views.map((v, i) => ({ name: `t${i}`, key: String(i), numel: v.numel, shape: v.shape, stride: v.stride, offset: v.offset })));
        const recs = Object.fromEntries(views.map((v, i) => [String(i), { data: new Uint8Array(v.bytes), deflate: v.deflate }]));
        await readAsFile(torchZip(pkl, recs), '.pt');
      }),
    TEST_TIMEOUT,
  );

  const goodPt = torchZip(stateDictPickle([{ name: 'w', key: '0', numel: 6, shape: [2, 3], stride: [3, 1] }, { name: 'v', key: '0', numel: 6, shape: [3, 2], stride: [1, 3] }]), { 0: new Uint8Array(24) });
  it(
    'torch zip (mutated)',
    () =>
      fuzz('torch-zip-mutated', mutated(goodPt), (b) => readAsFile(b, '.pt')),
    TEST_TIMEOUT,
  );

  // opcodes the interpreter knows, with arguments, so generated programs get past the first byte
  const OPS = [0x28, 0x29, 0x5d, 0x7d, 0x8f, 0x61, 0x65, 0x73, 0x75, 0x74, 0x85, 0x86, 0x87, 0x6c, 0x64, 0x90, 0x91, 0x4e, 0x88, 0x89, 0x30, 0x31, 0x32, 0x94, 0x52, 0x81, 0x62, 0x93, 0x51, 0x2e];
  const pickleArb = fc
    .array(
      fc.oneof(
        fc.constantFrom(...OPS).map((o) => [o]),
        fc.tuple(fc.constantFrom(0x4b, 0x71, 0x68), fc.integer({ min: 0, max: 255 })).map(([o, a]) => [o, a]),
        fc.tuple(fc.constantFrom(0x8c, 0x43, 0x8a), fc.uint8Array({ maxLength: 9 })).map(([o, b]) => [o, b.length, ...b]),
        fc.constantFrom('collections\nOrderedDict\n', 'torch._utils\n_rebuild_tensor_v2\n', 'torch\nFloatStorage\n', 'posix\nsystem\n', 'builtins\nset\n', '__builtin__\neval\n').map((g) => [0x63, ...Buffer.from(g, 'latin1')]),
      ),
      { maxLength: 40 },
    )
    .map((ops) => Buffer.from([0x80, 0x02, ...ops.flat(), 0x2e]));
  it(
    'pickle interpreter (generated opcode programs and random bytes)',
    () =>
      fuzz('pickle', fc.oneof(pickleArb, fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b))), (b) => {
        unpickle(b, { persistentLoad: (pid) => pid });
      }),
    TEST_TIMEOUT,
  );

  it(
    'pickle inside a torch zip (generated programs through the whole loader)',
    () =>
      fuzz('pickle-in-zip', pickleArb, (b) => readAsFile(torchZip(b, { 0: new Uint8Array(8) }), '.pt')),
    TEST_TIMEOUT,
  );

  const outside = join(tmp, 'outside-fifo');
  execFileSync('mkfifo', [outside]);
  const shardName = fc.oneof(fc.constantFrom('a.safetensors', 'missing.safetensors', '../a.safetensors', '/dev/zero', outside, 'sub/../a.safetensors', 'link.safetensors', 'fifo', '.', ''), fc.string({ maxLength: 6 }));
  it(
    'sharded index + verify (weight_map names from a hostile set)',
    () =>
      fuzz('index', fc.tuple(fc.dictionary(fc.string({ maxLength: 5 }), fc.oneof(shardName, fc.integer(), fc.constant(null)), { maxKeys: 4 }), fc.boolean()), async ([wm, withMeta]) => {
        const d = fresh();
        mkdirSync(d);
        try {
          writeFileSync(join(d, 'a.safetensors'), safetensors({ x: { dtype: 'U8', shape: [1], data_offsets: [0, 1] } }, 1));
          symlinkSync(outside, join(d, 'link.safetensors'));
          execFileSync('mkfifo', [join(d, 'fifo')]);
          const idx = join(d, 'model.safetensors.index.json');
          writeFileSync(idx, JSON.stringify(withMeta ? { metadata: { total_size: 1 }, weight_map: wm } : { weight_map: wm }));
          for (const f of [() => readAllWeights(idx), () => verifyWeights(idx), () => verifyWeights(d)]) {
            try {
              await f();
            } catch (e) {
              if (!(e instanceof SoracError)) throw e;
            }
          }
        } finally {
          rmSync(d, { recursive: true, force: true });
        }
      }),
    TEST_TIMEOUT,
  );

  const target = fc.constantFrom('blob', 'outside', '/dev/zero', 'missing', 'dir', 'fifo', 'self', 'parent');
  it(
    'hub cache layouts (refs, snapshot links) through resolve, load and verify',
    () =>
      fuzz('hub-cache', fc.record({ ref: fc.oneof(fc.constant('C'), fc.string({ maxLength: 44 }), fc.constant('FIFO')), links: fc.dictionary(fc.constantFrom('model.safetensors', 'config.json', 'sub', 'model.safetensors.index.json'), target, { maxKeys: 4 }) }), async ({ ref, links }) => {
        const cache = fresh();
        const repo = join(cache, 'models--o--n');
        const commit = 'c'.repeat(40);
        const snap = join(repo, 'snapshots', commit);
        mkdirSync(snap, { recursive: true });
        mkdirSync(join(repo, 'refs'));
        mkdirSync(join(repo, 'blobs'));
        const blob = join(repo, 'blobs', 'd'.repeat(64));
        writeFileSync(blob, safetensors({ x: { dtype: 'U8', shape: [1], data_offsets: [0, 1] } }, 1));
        try {
          if (ref === 'FIFO') execFileSync('mkfifo', [join(repo, 'refs', 'main')]);
          else writeFileSync(join(repo, 'refs', 'main'), ref === 'C' ? commit : ref);
          for (const [name, t] of Object.entries(links)) {
            const to = { blob, outside, '/dev/zero': '/dev/zero', missing: join(repo, 'blobs', 'e'.repeat(64)), dir: repo, fifo: outside, self: '.', parent: '..' }[t]!;
            symlinkSync(to, join(snap, name));
          }
          const opts = { cacheDir: cache, env: { HOME: cache } };
          for (const f of [() => openWeights('o/n', opts).then((s) => s.close()), () => verifyWeights('o/n', opts), () => openWeights('o/n/model.safetensors', opts).then((s) => s.close())]) {
            try {
              await f();
            } catch (e) {
              if (!(e instanceof SoracError)) throw e;
            }
          }
        } finally {
          rmSync(cache, { recursive: true, force: true });
        }
      }),
    TEST_TIMEOUT,
  );

  const TOKENS = ['model', 'module', 'M', 'X', 'config', 'entry', 'forward', 'fn', 'let', 'param', 'buffer', 'return', 'if', 'else', 'for', 'in', 'range', 'assert', 'import', 'from', '"std/nn"', '"./x"', '"/dev/zero"', 'Linear', 'dim', 'x', 'y', 'B', 'N', 'f32', 'int', 'float', 'bool', '{', '}', '(', ')', '[', ']', ',', ':', '=', '->', '.', '+', '-', '*', '/', '//', '%', '**', '==', '<', 'and', 'not', '?', '...', '0', '1', '8', '-1', '1e308', '9007199254740993', '"B N (h d) -> B h N d"', 'rearrange', 'h', 'for i in range(dim)', '\n', ' ', '#c\n'];
  const soup = fc.array(fc.constantFrom(...TOKENS), { maxLength: 60 }).map((t) => t.join(' '));
  const SKELETON = (body: string) => `model M {\n  config {\n    dim: int = 4\n  }\n  entry forward(x: f32[B, dim]) -> (y: f32[B, dim]) {\n    ${body}\n  }\n}\n`;
  it(
    'parser (token soups): diagnostics, never a throw',
    () =>
      fuzz('parser', fc.oneof(soup, fc.string({ maxLength: 80 })), (src) => {
        const r = parse(src, 'fuzz.sora');
        for (const d of r.diagnostics) expect(d.code).toMatch(/^SORA\d{4}$/);
      }),
    TEST_TIMEOUT,
  );

  it(
    'compiler and checker (token soups inside a model skeleton)',
    () =>
      fuzz('compiler', fc.oneof(soup, soup.map(SKELETON)), async (src) => {
        const f = fresh('.sora');
        writeFileSync(f, src);
        try {
          await checkModel(loadModel({ file: f, cwd: tmp }));
        } finally {
          rmSync(f, { force: true });
        }
      }),
    TEST_TIMEOUT,
  );

  const model = fresh('.sora');
  writeFileSync(model, 'import { Linear } from "std/nn"\nmodel M {\n  config {\n    dim: int = 4\n    heads: int = 2\n    eps: float = 1e-6\n    patch: int[2] = [1, 2]\n    name: str = "m"\n  }\n  lin = Linear(dim, dim)\n  entry forward(x: f32[B, dim]) -> (y: f32[B, dim]) {\n    return lin(x) * eps\n  }\n}\n');
  const key = fc.constantFrom('dim', 'heads', 'eps', 'patch', 'name', 'nope', '__proto__');
  it(
    'configs and --set (generated JSON values)',
    () =>
      fuzz('config-set', fc.tuple(fc.dictionary(key, fc.jsonValue({ maxDepth: 4 })), fc.array(fc.tuple(key, fc.oneof(fc.json({ maxDepth: 3 }), fc.string({ maxLength: 8 }), fc.constantFrom('1e308', '9007199254740993', '[[[[[[1]]]]]]', 'None', 'True', '-5', '0'))), { maxLength: 3 })), async ([cfg, set]) => {
        const c = fresh('.json');
        writeFileSync(c, JSON.stringify(cfg));
        try {
          await checkModel(loadModel({ file: model, cwd: tmp, configPath: c, set }));
        } finally {
          rmSync(c, { force: true });
        }
      }),
    TEST_TIMEOUT,
  );
});
