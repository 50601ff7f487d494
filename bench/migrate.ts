/**
 * Migration apply bench: `npx tsx bench/migrate.ts [--gb-blocks N] [--reps R] [--keep] [--cold]`
 *
 * Builds a real (non-sparse) MMDiT-shaped bf16 checkpoint (hidden 3072, Open-Sora 2.0 widths;
 * N double + N single blocks, unfused layout; N=4 → 3.9 GB, largest tensor 94 MB), then times,
 * each in a fresh process (peak RSS from resourceUsage):
 *   - `cp` of the same file (the floor: same bytes in, same bytes out),
 *   - apply of a rename-only plan (every tensor streamed from the source in 8 MiB chunks),
 *     with --source-hash header and with the default files hash (one extra sequential read),
 *   - apply of mmdit-fuse-qkv (q/k/v and q/k/v_mlp concatenated: materialised tensors),
 *   - apply into a sharded directory,
 *   - a materialising plan (permute [1,0] of every weight),
 * and a baseline process (same modules, empty plan) for the RSS floor. --reps rounds (3) run
 * interleaved (cp, every case, again) and each case reports its median (the transpose once).
 * Warm page cache by default (the source is read once first); --cold drops the page cache
 * (root: /proc/sys/vm/drop_caches) before each run. Prints numbers only; cleans up unless --keep.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DType } from '../core/dtype.ts';
import { writeSafetensors, type WriterTensor } from '../runtime/formats/safetensors-writer.ts';

const args = process.argv.slice(2);
const arg = (name: string, def: string) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1]! : def;
};

if (args[0] === '--child') {
  const [, spec, input, out, hash] = args;
  const { applyMigration } = await import('../runtime/migrate/apply.ts');
  const { getBuiltin } = await import('../runtime/migrate/builtins.ts');
  const { planFromJson } = await import('../runtime/migrate/script.ts');
  const plan = spec!.endsWith('.json') ? planFromJson(spec!) : (sig: Parameters<ReturnType<typeof getBuiltin>['plan']>[0]) => getBuiltin(spec!).plan(sig, {}, false);
  const t0 = performance.now();
  const r = await applyMigration({ input: input!, out: out!, plan, sourceHash: hash as 'files' | 'header' });
  const seconds = (performance.now() - t0) / 1000;
  process.stdout.write(JSON.stringify({ seconds, bytes: r.bytes, largest: r.largestTensorBytes, maxRssMiB: process.resourceUsage().maxRSS / 1024 }) + '\n');
  process.exit(0);
}

const N = Number(arg('--gb-blocks', '4'));
const cold = args.includes('--cold');
const keep = args.includes('--keep');
const C = 3072;
const M = 4 * C;
const dir = mkdtempSync(join(tmpdir(), 'sorac-bench-migrate-'));
const src = join(dir, 'mmdit.safetensors');

// deterministic, incompressible-looking data: one random 16 MiB block, sliced per tensor
const pool = randomBytes(16 << 20);
const tensor = (shape: number[], dtype: DType = 'bf16'): WriterTensor => {
  const n = shape.reduce((a, b) => a * b, 1) * 2;
  return {
    dtype,
    shape,
    data: function* () {
      for (let o = 0; o < n; o += pool.length) yield pool.subarray(0, Math.min(pool.length, n - o));
    },
  };
};
const ts = new Map<string, WriterTensor>();
ts.set('img_in.weight', tensor([C, 64]));
for (let i = 0; i < N; i++) {
  for (const s of ['img', 'txt']) {
    for (const p of ['q_proj', 'k_proj', 'v_proj', 'proj']) {
      ts.set(`double_blocks.${i}.${s}_attn.${p}.weight`, tensor([C, C]));
      ts.set(`double_blocks.${i}.${s}_attn.${p}.bias`, tensor([C]));
    }
    ts.set(`double_blocks.${i}.${s}_mlp.0.weight`, tensor([M, C]));
    ts.set(`double_blocks.${i}.${s}_mlp.2.weight`, tensor([C, M]));
    ts.set(`double_blocks.${i}.${s}_mod.lin.weight`, tensor([6 * C, C]));
  }
  for (const p of ['q_proj', 'k_proj']) {
    ts.set(`single_blocks.${i}.${p}.weight`, tensor([C, C]));
    ts.set(`single_blocks.${i}.${p}.bias`, tensor([C]));
  }
  ts.set(`single_blocks.${i}.v_mlp.weight`, tensor([C + M, C]));
  ts.set(`single_blocks.${i}.v_mlp.bias`, tensor([C + M]));
  ts.set(`single_blocks.${i}.linear2.weight`, tensor([C, C + M]));
  ts.set(`single_blocks.${i}.modulation.lin.weight`, tensor([3 * C, C]));
}
let t0 = performance.now();
await writeSafetensors(src, ts);
const size = statSync(src).size;
const gb = (b: number) => (b / 1e9).toFixed(2);
console.log(`checkpoint: ${ts.size} bf16 tensors, ${gb(size)} GB, written in ${((performance.now() - t0) / 1000).toFixed(1)} s (${dir})`);
const largest = Math.max(...[...ts.values()].map((t) => t.shape.reduce((a, b) => a * b, 1) * 2));
console.log(`largest source tensor: ${(largest / 2 ** 20).toFixed(1)} MiB; largest fused output tensor (single-block linear1 [${3 * C + M},${C}] bf16): ${(((3 * C + M) * C * 2) / 2 ** 20).toFixed(1)} MiB`);

const transposePlan = join(dir, 'transpose.json');
writeFileSync(transposePlan, JSON.stringify({ format: 'sorac.migration/1', name: 'transpose-all', ops: [{ op: 'permute', key: '(.+).weight', perm: [1, 0] }] }));
const tiny = join(dir, 'tiny.safetensors');
await writeSafetensors(tiny, new Map([['a', tensor([4])]]));
const emptyPlan = join(dir, 'empty.json');
writeFileSync(emptyPlan, JSON.stringify({ format: 'sorac.migration/1', name: 'nothing', ops: [] }));
const renamePlan = join(dir, 'rename.json');
writeFileSync(renamePlan, JSON.stringify({ format: 'sorac.migration/1', name: 'rename-all', ops: [{ op: 'renamePattern', from: '^(double|single)_blocks.(\\d+).', to: '$1_layers.$2.' }] }));

const dropCaches = () => {
  if (!cold) return;
  execFileSync('sync');
  writeFileSync('/proc/sys/vm/drop_caches', '3');
};
const warm = () => {
  if (!cold) spawnSync('cat', [src], { stdio: ['ignore', 'ignore', 'ignore'] });
};

function timeCp(): { seconds: number; maxRssMiB: number } {
  // same flush as apply's fsync + rename: cp, then sync the file
  const out = join(dir, 'cp.safetensors');
  execFileSync('sync');
  dropCaches();
  warm();
  t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', 'sh', '-c', `cp ${src} ${out} && sync -f ${out}`], { encoding: 'utf8' });
  const seconds = (performance.now() - t0) / 1000;
  rmSync(out, { force: true });
  return { seconds, maxRssMiB: Number(r.stderr.trim().split('\n').pop()) / 1024 };
}

function timeApply(spec: string, hash: string, out: string, input = src) {
  execFileSync('sync');
  dropCaches();
  warm();
  t0 = performance.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', import.meta.filename, '--child', spec, input, out, hash], { encoding: 'utf8', cwd: join(import.meta.dirname, '..') });
  const wall = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(r.stderr);
  rmSync(out, { force: true, recursive: true });
  return { ...JSON.parse(r.stdout.trim().split('\n').pop()!), wall };
}

const reps = Number(arg('--reps', '3'));
const rows: [string, number, number, number][] = [];
const base = timeApply(emptyPlan, 'header', join(dir, 'tiny-out.safetensors'), tiny);
rows.push(['baseline: node + tsx + sorac, empty plan on 8 bytes', base.seconds, 0, base.maxRssMiB]);
const cases = [
  ['apply rename-only, --source-hash header', renamePlan, 'header', join(dir, 'o1.safetensors')],
  ['apply rename-only, --source-hash files (default)', renamePlan, 'files', join(dir, 'o2.safetensors')],
  ['apply mmdit-fuse-qkv (dim-0 concat, streamed)', 'mmdit-fuse-qkv', 'header', join(dir, 'o3.safetensors')],
  ['apply mmdit-fuse-qkv → sharded dir (5 GB shards)', 'mmdit-fuse-qkv', 'header', join(dir, 'o4-dir')],
  ['apply transpose every weight (materialised)', transposePlan, 'header', join(dir, 'o5.safetensors')],
] as const;
// interleaved rounds (cp, then every case, repeated) so disk-speed drift hits all cases alike; median per case
const runs = new Map<string, { seconds: number; bytes: number; maxRssMiB: number }[]>();
const add = (l: string, r: { seconds: number; bytes: number; maxRssMiB: number }) => runs.set(l, [...(runs.get(l) ?? []), r]);
for (let i = 0; i < reps; i++) {
  const c = timeCp();
  add('cp (+ sync) of the same file', { ...c, bytes: size });
  // rotate the order each round: the first run after cp's delete of 3.85 GB tends to be slower
  const streamed = cases.filter(([l]) => !l.includes('transpose'));
  for (let j = 0; j < streamed.length; j++) {
    const [label, spec, hash, out] = streamed[(i + j) % streamed.length]!;
    add(label, timeApply(spec, hash, out));
  }
  if (i === 0) for (const [label, spec, hash, out] of cases.filter(([l]) => l.includes('transpose'))) add(label, timeApply(spec, hash, out));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
for (const [l, rs] of runs) {
  const sec = median(rs.map((r) => r.seconds));
  rows.push([`${l}${rs.length > 1 ? ` (median of ${rs.length}; ${rs.map((r) => r.seconds.toFixed(1)).join('/')} s)` : ''}`, sec, rs[0]!.bytes / sec, Math.max(...rs.map((r) => r.maxRssMiB))]);
}
console.log(`\n${cold ? 'cold' : 'warm'} page cache; apply includes fsync + rename; times are the apply call (process start excluded)`);
console.log('case'.padEnd(90), 'seconds'.padStart(8), 'GB/s'.padStart(7), 'peak RSS MiB'.padStart(13));
for (const [l, s, bps, rss] of rows) console.log(l.padEnd(90), s.toFixed(2).padStart(8), (bps / 1e9).toFixed(2).padStart(7), rss.toFixed(0).padStart(13));
if (!keep) rmSync(dir, { recursive: true, force: true });
