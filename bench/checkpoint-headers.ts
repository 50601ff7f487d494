/**
 * Checkpoint I/O bench: `npx tsx bench/checkpoint-headers.ts [--real-gb N] [--keep]`
 *
 * 1. Header reading is independent of file size: sharded safetensors checkpoints with the same
 *    tensor count (same header bytes) but 0.01 → 200 GB of data, written as sparse files (the
 *    reader only touches the header and the file length), opened through `openWeights` (index +
 *    every shard header + layout validation).
 * 2. Header time vs tensor count (what it does scale with).
 * 3. `sorac verify` hashing throughput on a real (non-sparse) multi-GB sharded checkpoint written
 *    by the streaming writer, vs `sha256sum` and `cat > /dev/null`, warm and cold page cache
 *    (cold = `dd iflag=nocache count=0` drops each file's pages first), with peak RSS of the
 *    verify process (flat: one reused 8 MiB buffer).
 *
 * Prints numbers only; no assertions. Cleans up its temp dir (unless --keep).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, closeSync, writeSync, ftruncateSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildHeader, writeShardedSafetensors, type WriterTensor } from '../runtime/formats/safetensors-writer.ts';
import { openWeights } from '../runtime/weights/store.ts';
import { verifyWeights } from '../runtime/weights/verify.ts';

const args = process.argv.slice(2);
const arg = (name: string, def: string) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1]! : def;
};

// ---- child mode: run verify / open in a fresh process and report peak RSS -------------------
if (args[0] === '--child') {
  const mode = args[1];
  const target = args[2]!;
  const t0 = performance.now();
  if (mode === 'verify') {
    const r = await verifyWeights(target);
    const s = (performance.now() - t0) / 1000;
    process.stdout.write(JSON.stringify({ ok: r.ok, bytes: r.bytes, seconds: s, maxRssMiB: process.resourceUsage().maxRSS / 1024 }) + '\n');
  } else {
    const st = await openWeights(target);
    const s = (performance.now() - t0) / 1000;
    process.stdout.write(JSON.stringify({ tensors: st.tensors.size, seconds: s, maxRssMiB: process.resourceUsage().maxRSS / 1024 }) + '\n');
    await st.close();
  }
  process.exit(0);
}

const tmp = mkdtempSync(join(process.env.SORAC_BENCH_DIR ?? tmpdir(), 'sorac-ckpt-bench-'));
const keep = args.includes('--keep');
const cleanup = () => {
  if (!keep) rmSync(tmp, { recursive: true, force: true });
};
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

const gb = (n: number) => (n / 1e9).toFixed(2);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Write a sharded checkpoint whose data regions are holes: header + ftruncate. */
function sparseSharded(dir: string, tensorsPerShard: number, shards: number, bytesPerTensor: number) {
  execFileSync('mkdir', ['-p', dir]);
  const weightMap: Record<string, string> = {};
  let total = 0;
  const elems = Math.floor(bytesPerTensor / 2);
  // shape [rows, cols] with rows*cols = elems (bf16)
  const cols = 1024;
  const rows = Math.max(1, Math.floor(elems / cols));
  for (let s = 0; s < shards; s++) {
    const name = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const tensors = new Map<string, WriterTensor>();
    for (let i = 0; i < tensorsPerShard; i++) {
      const key = `blocks.${s * tensorsPerShard + i}.attn.qkv.weight`;
      tensors.set(key, { dtype: 'bf16', shape: [rows, cols], data: new Uint8Array() });
      weightMap[key] = name;
    }
    const { headerBytes, dataLength } = buildHeader(tensors, undefined);
    const fd = openSync(join(dir, name), 'w');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(headerBytes.length));
    writeSync(fd, len, 0, 8, 0);
    writeSync(fd, headerBytes, 0, headerBytes.length, 8);
    ftruncateSync(fd, 8 + headerBytes.length + dataLength);
    closeSync(fd);
    total += dataLength;
  }
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }));
  return total;
}

async function timeOpen(dir: string, reps = 15) {
  const times: number[] = [];
  let n = 0;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    const s = await openWeights(dir);
    times.push(performance.now() - t0);
    n = s.tensors.size;
    await s.close();
  }
  return { ms: median(times), tensors: n };
}

function child(mode: 'verify' | 'open', target: string) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', new URL(import.meta.url).pathname, '--child', mode, target], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

function timeCmd(cmd: string): number {
  const t0 = performance.now();
  execFileSync('bash', ['-c', cmd], { stdio: ['ignore', 'ignore', 'inherit'] });
  return (performance.now() - t0) / 1000;
}

function dropCache(files: string[]) {
  for (const f of files) spawnSync('dd', [`if=${f}`, 'iflag=nocache', 'count=0', 'status=none']);
}

console.log(`sorac checkpoint bench — node ${process.version}, temp dir ${tmp}`);
console.log(`machine: ${execFileSync('nproc').toString().trim()} cores, ${execFileSync('bash', ['-c', "free -g | awk '/Mem/{print $2}'"]).toString().trim()} GiB RAM\n`);

// ---- 1. header time vs file size (constant tensor count) -----------------------------------
console.log('1) openWeights(index) on sparse sharded safetensors, 512 tensors in 4 shards (same header), varying data size');
console.log('   data size      shards  tensors  median open ms  peak RSS MiB (fresh process)');
for (const perTensor of [20_000, 2_000_000, 40_000_000, 400_000_000]) {
  const dir = join(tmp, `sparse-${perTensor}`);
  const total = sparseSharded(dir, 128, 4, perTensor);
  const { ms, tensors } = await timeOpen(dir);
  const c = child('open', dir);
  console.log(`   ${(gb(total) + ' GB').padStart(10)}  ${'4'.padStart(6)}  ${String(tensors).padStart(7)}  ${ms.toFixed(2).padStart(14)}  ${c.maxRssMiB.toFixed(0).padStart(12)}`);
  rmSync(dir, { recursive: true, force: true });
}

// ---- 2. header time vs tensor count ----------------------------------------------------------
console.log('\n2) openWeights(index) vs tensor count (4 shards, 1 MB per tensor, sparse)');
console.log('   tensors  median open ms');
for (const n of [64, 1024, 8192]) {
  const dir = join(tmp, `count-${n}`);
  sparseSharded(dir, n / 4, 4, 1_000_000);
  const { ms } = await timeOpen(dir, 7);
  console.log(`   ${String(n).padStart(7)}  ${ms.toFixed(2).padStart(14)}`);
  rmSync(dir, { recursive: true, force: true });
}

// ---- 3. verify throughput on real data ------------------------------------------------------------
const realGB = Number(arg('--real-gb', '3'));
console.log(`\n3) verify on a real ${realGB} GB sharded checkpoint (streaming writer, 1 GB shards)`);
const real = join(tmp, 'real');
execFileSync('mkdir', ['-p', real]);
const chunk = randomBytes(8 << 20);
const tensorBytes = 256 << 20;
const nT = Math.round((realGB * 1e9) / tensorBytes);
const tensors = new Map<string, WriterTensor>();
for (let i = 0; i < nT; i++) {
  tensors.set(`layers.${i}.weight`, {
    dtype: 'f32',
    shape: [tensorBytes / 4 / 1024, 1024],
    data: function* () {
      for (let o = 0; o < tensorBytes; o += chunk.length) {
        chunk.writeUInt32LE(i * 7919 + o, 0); // vary content
        yield chunk.subarray(0, Math.min(chunk.length, tensorBytes - o));
      }
    },
  });
}
let t0 = performance.now();
const w = await writeShardedSafetensors(real, tensors, { maxShardSize: 1e9 });
const writeS = (performance.now() - t0) / 1000;
const files = [w.indexPath, ...w.shards.map((s) => s.path)];
const totalBytes = files.reduce((a, f) => a + statSync(f).size, 0);
console.log(`   written: ${w.shards.length} shards, ${gb(totalBytes)} GB in ${writeS.toFixed(1)} s (${(totalBytes / 1e6 / writeS).toFixed(0)} MB/s, fsync'd, atomic)`);
const shardGlob = files.map((f) => `'${f}'`).join(' ');
const rows: [string, number, string][] = [];
for (const cache of ['warm', 'cold'] as const) {
  if (cache === 'warm') timeCmd(`cat ${shardGlob} > /dev/null`); // prime
  const prep = () => (cache === 'cold' ? dropCache(files) : undefined);
  prep();
  const cat = timeCmd(`cat ${shardGlob} > /dev/null`);
  prep();
  const sha = timeCmd(`sha256sum ${shardGlob} > /dev/null`);
  prep();
  const v = child('verify', real);
  rows.push([`cat > /dev/null (${cache})`, cat, '']);
  rows.push([`sha256sum (${cache})`, sha, '']);
  rows.push([`sorac verify (${cache})`, v.seconds, `peak RSS ${v.maxRssMiB.toFixed(0)} MiB, ok=${v.ok}`]);
}
console.log('   what                        seconds   MB/s');
for (const [what, s, extra] of rows) console.log(`   ${what.padEnd(26)} ${s.toFixed(2).padStart(8)} ${(totalBytes / 1e6 / s).toFixed(0).padStart(6)}  ${extra}`);
t0 = performance.now();
const opened = await openWeights(real);
console.log(`\n   openWeights on the real checkpoint: ${(performance.now() - t0).toFixed(2)} ms for ${opened.tensors.size} tensors (headers only)`);
await opened.close();
cleanup();
