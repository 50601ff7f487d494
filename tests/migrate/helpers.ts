/** Shared helpers for tests/migrate: in-memory checkpoints, a plan generator, CLI runs. */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { type DType, DTYPE_SIZE } from '../../core/dtype.ts';
import { main } from '../../cli/main.ts';
import { memoryIO } from '../../cli/io.ts';
import { evalNode } from '../../runtime/migrate/apply.ts';
import { SoracError } from '../../core/errors.ts';
import type { Op, Plan } from '../../runtime/migrate/plan.ts';
import { resolvePlan, type Sig } from '../../runtime/migrate/resolve.ts';

export const ROOT = join(import.meta.dirname, '..', '..');

export interface MemTensor {
  readonly sig: Sig;
  readonly bytes: Uint8Array;
}
export type MemCkpt = Map<string, MemTensor>;

export const sigOf = (c: MemCkpt) => new Map([...c].map(([k, t]) => [k, t.sig]));

/** Apply a plan to an in-memory checkpoint with the same resolver and kernels as `sorac migrate apply`. */
export async function applyMem(plan: Plan, c: MemCkpt): Promise<{ out: MemCkpt; warnings: string[] }> {
  const r = resolvePlan(plan, sigOf(c));
  const warnings = r.warnings.filter((w) => w.code === 'SORA6010').map((w) => w.message);
  const out: MemCkpt = new Map();
  for (const [k, n] of r.tensors) out.set(k, { sig: n.sig, bytes: await evalNode(n, async (s) => c.get(s)!.bytes, k, (m) => warnings.push(m)) });
  return { out, warnings };
}

/** Canonical form for byte-exact comparison: sorted keys, shape, dtype, sha256 of the bytes. */
export function canon(c: MemCkpt): string[] {
  return [...c]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, t]) => `${k} ${t.sig.dtype} [${t.sig.shape.join(',')}] ${createHash('sha256').update(t.bytes).digest('hex')}`);
}

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** Values that are exact in f16/bf16/f32 and stay normal when halved or doubled a few times. */
export function fillBytes(sig: Sig, seed: number): Uint8Array {
  const n = numel(sig.shape);
  const b = new Uint8Array(n * DTYPE_SIZE[sig.dtype]);
  const dv = new DataView(b.buffer);
  let s = (seed * 2654435761) >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
  for (let i = 0; i < n; i++) {
    const r = next();
    const v = ((r % 255) - 127) / 8 || 0.125; // multiples of 1/8 in [-15.9, 16]; never 0 (keeps scale exact)
    switch (sig.dtype) {
      case 'f32':
        dv.setFloat32(i * 4, v, true);
        break;
      case 'f16': {
        const f = new Float32Array([v]);
        const u = new Uint32Array(f.buffer)[0]!;
        // exact conversion of a short-mantissa value
        const sign = (u >>> 16) & 0x8000;
        const exp = ((u >>> 23) & 0xff) - 127 + 15;
        const man = (u >>> 13) & 0x3ff;
        dv.setUint16(i * 2, sign | (exp << 10) | man, true);
        break;
      }
      case 'bf16': {
        const f = new Float32Array([v]);
        dv.setUint16(i * 2, new Uint32Array(f.buffer)[0]! >>> 16, true);
        break;
      }
      case 'i32':
        dv.setInt32(i * 4, (r % 2001) - 1000, true);
        break;
      case 'i8':
        dv.setInt8(i, (r % 255) - 127);
        break;
      default:
        b[i * DTYPE_SIZE[sig.dtype]] = r & 0xff;
    }
  }
  return b;
}

const FLOATS: DType[] = ['f32', 'f16', 'bf16'];

/** A random checkpoint: keys like `blocks.0.attn.w`, `embed.w`, small shapes, mixed dtypes. */
export const memCkptArb = fc
  .uniqueArray(
    fc.record({
      prefix: fc.constantFrom('blocks', 'layers', 'embed', 'head', 'norm'),
      idx: fc.nat(3),
      leaf: fc.constantFrom('w', 'b', 'proj.weight', 'qkv.weight', 'scale'),
      shape: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 }),
      dtype: fc.constantFrom<DType>('f32', 'f32', 'f16', 'bf16', 'i32', 'i8'),
      seed: fc.nat(),
    }),
    { minLength: 1, maxLength: 8, selector: (t) => `${t.prefix}.${t.idx}.${t.leaf}` },
  )
  .map((list) => {
    const c: MemCkpt = new Map();
    for (const t of list) {
      const sig = { shape: t.shape, dtype: t.dtype };
      c.set(`${t.prefix}.${t.idx}.${t.leaf}`, { sig, bytes: fillBytes(sig, t.seed) });
    }
    return c;
  });

/**
 * Generate a random plan that fits `sig` (simulating shapes as it goes). With `invertible`, only
 * ops that have exact inverses (and fresh target names, so renames stay one to one).
 */
export function genPlan(g: fc.GeneratorValue, sig0: ReadonlyMap<string, Sig>, invertible: boolean, maxOps = 6, tag = 'p'): Plan {
  const sig = new Map(sig0);
  const ops: Op[] = [];
  let fresh = 0;
  const newKey = (base: string) => `${tag}${fresh++}_${base.replace(/\./g, '_')}.w`;
  const n = g(fc.integer, { min: 0, max: maxOps });
  for (let i = 0; i < n; i++) {
    const keys = [...sig.keys()].sort();
    if (!keys.length) break;
    const key = g(fc.constantFrom, ...keys);
    const s = sig.get(key)!;
    const kinds = ['rename', 'renamePattern', 'unsqueeze', 'reshape', 'permute', 'split', 'concat', 'pad', 'tile', 'scale', 'cast', 'init', ...(invertible ? [] : ['drop', 'slice', 'untile', 'castNarrow'])];
    const kind = g(fc.constantFrom, ...kinds);
    const rank = s.shape.length;
    let op: Op | undefined;
    switch (kind) {
      case 'rename':
        op = { op: 'rename', from: key, to: newKey(key) };
        break;
      case 'renamePattern': {
        // rename a whole first segment family `blocks.(\d+).` to a fresh name
        const first = key.split('.')[0]!;
        const to = `${tag}${fresh++}${first}`;
        op = { op: 'renamePattern', from: `^${first}.(\\d+).`, to: `${to}.$1.` };
        break;
      }
      case 'unsqueeze':
        op = rank < 5 ? { op: 'unsqueeze', key, dim: g(fc.integer, { min: 0, max: rank }) } : undefined;
        if (!op && s.shape.includes(1)) op = { op: 'squeeze', key, dim: s.shape.indexOf(1) };
        break;
      case 'reshape':
        op = { op: 'reshape', key, from: [...s.shape], to: g(fc.boolean) ? [numel(s.shape)] : [...s.shape].reverse() };
        break;
      case 'permute': {
        const perm = g(fc.shuffledSubarray, [...Array(rank).keys()], { minLength: rank, maxLength: rank });
        op = { op: 'permute', key, perm };
        break;
      }
      case 'split': {
        const d = g(fc.integer, { min: 0, max: rank - 1 });
        if (s.shape[d]! >= 2) {
          const a = g(fc.integer, { min: 1, max: s.shape[d]! - 1 });
          op = { op: 'split', key, dim: d, into: [newKey(key), newKey(key)], sizes: [a, s.shape[d]! - a] };
        }
        break;
      }
      case 'concat': {
        const d = g(fc.integer, { min: 0, max: rank - 1 });
        const mates = keys.filter((k) => k !== key && sig.get(k)!.dtype === s.dtype && sig.get(k)!.shape.length === rank && sig.get(k)!.shape.every((v, j) => j === d || v === s.shape[j]));
        if (mates.length) {
          const other = g(fc.constantFrom, ...mates);
          op = { op: 'concat', from: [key, other], dim: d, to: newKey(key), sizes: [s.shape[d]!, sig.get(other)!.shape[d]!] };
        }
        break;
      }
      case 'pad':
        op = { op: 'pad', key, dim: g(fc.integer, { min: 0, max: rank - 1 }), after: g(fc.integer, { min: 0, max: 3 }), ...(g(fc.boolean) ? { before: g(fc.integer, { min: 1, max: 2 }) } : {}), mode: g(fc.constantFrom, 'zeros' as const, 'ones' as const, 'repeat-last' as const) };
        break;
      case 'tile':
        op = { op: 'tile', key, dim: g(fc.integer, { min: 0, max: rank - 1 }), times: g(fc.integer, { min: 1, max: 3 }) };
        break;
      case 'scale':
        if (FLOATS.includes(s.dtype)) op = { op: 'scale', key, factor: g(fc.constantFrom, 0.25, 0.5, 2, 4) };
        break;
      case 'cast':
        if (s.dtype === 'f16' || s.dtype === 'bf16') op = { op: 'cast', key, from: s.dtype, to: 'f32' };
        else if (s.dtype === 'i8') op = { op: 'cast', key, from: 'i8', to: 'i32' };
        break;
      case 'castNarrow':
        if (s.dtype === 'f32') op = { op: 'cast', key, to: 'bf16' };
        break;
      case 'init':
        op = { op: 'init', key: newKey('init'), shape: [2, 3], dtype: 'f32', fill: g(fc.constantFrom, { kind: 'zeros' as const }, { kind: 'ones' as const }, { kind: 'normal' as const, mean: 0, std: 0.02, seed: 7 }) };
        break;
      case 'drop':
        op = { op: 'drop', key };
        break;
      case 'slice':
        op = { op: 'slice', key, dim: 0, start: 0, end: Math.max(1, s.shape[0]! - 1) };
        break;
      case 'untile':
        if (s.shape[0]! % 2 === 0) op = { op: 'untile', key, dim: 0, times: 2 };
        break;
    }
    if (!op) continue;
    // sometimes select the whole family (`blocks.(\d+).w`) instead of one key: ops then run on
    // every matching tensor, and split targets become templates (`…$1…`)
    const fam = /^([^.]+)\.(\d+)\.(.+)$/.exec(key);
    if (fam && 'key' in op && op.op !== 'init' && op.op !== 'drop' && g(fc.boolean)) {
      const pat = `${fam[1]}.(\\d+).${fam[3]}`;
      op = op.op === 'split' ? { ...op, key: pat, into: op.into.map((_, j) => `${tag}${fresh++}x${j}.$1.w`) } : ({ ...op, key: pat } as Op);
    }
    const plan: Plan = { format: 'sorac.migration/1', name: 'gen', ops: [op] };
    let r;
    try {
      r = resolvePlan(plan, sig);
    } catch (e) {
      if (e instanceof SoracError) continue; // the op does not fit every tensor of the family
      throw e;
    }
    sig.clear();
    for (const [k, nn] of r.tensors) sig.set(k, nn.sig);
    ops.push(op);
  }
  return { format: 'sorac.migration/1', name: tag, ops };
}

export function tempDir(prefix = 'sorac-mig-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  mkdirSync(d, { recursive: true });
  return d;
}

/** Run the CLI in-process. */
export async function cli(args: string[], opts: { isTTY?: boolean } = {}) {
  const io = memoryIO(opts);
  const code = await main(args, io);
  return { code, out: io.out, err: io.err };
}

/** Spawn the CLI from sources as a child process (for kill tests). */
export function spawnCli(args: string[], env: Record<string, string> = {}) {
  return spawn(process.execPath, [join(ROOT, 'bin/sorac.js'), ...args], { cwd: ROOT, env: { ...process.env, SORAC_FROM_SOURCE: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

export const sha256File = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

export function mountTmpfs(dir: string, size: string): boolean {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return false;
  return spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' }).status === 0;
}
export const remountReadOnly = (dir: string) => spawnSync('mount', ['-o', 'remount,ro', dir], { stdio: 'ignore' }).status === 0;
export const umount = (dir: string) => void spawnSync('umount', [dir], { stdio: 'ignore' });
