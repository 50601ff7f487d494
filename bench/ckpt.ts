/**
 * Training-checkpoint bench: `npx tsx bench/ckpt.ts [--count 100] [--real-gb 1] [--keep]`
 *
 * 1. `ckpt ls` over an experiment dir of N (default 100) Open-Sora 2.0 checkpoints of STDiT3-XL/2
 *    (examples/stdit3.sora at its default config, 1.1 B parameters): per checkpoint model/ bf16
 *    shards, ema.safetensors (bf16), master.safetensors (f32), optimizer/ safetensors shards of
 *    exp_avg + exp_avg_sq (f32, 4096 MB per shard as Open-Sora) + the small pickles copied from the
 *    fixture — about 17.6 GB apparent per checkpoint, written as sparse files (headers only), as
 *    `ls` reads only headers and sizes. Timed in-process (listCheckpoints) and as a CLI process.
 * 2. Export throughput on a real (non-sparse) checkpoint of about --real-gb GB (f32 EMA): `ckpt
 *    export` as stored, to bf16, and sharded, vs `cp` of the same file (warm page cache), with the
 *    export's peak RSS from a child process (streaming: one tensor in memory at a time).
 *
 * Prints numbers only; no assertions. Cleans up its temp dir (unless --keep).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, copyFileSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compile } from '../compiler/compile.ts';
import { DTYPE_SIZE, type DType } from '../core/dtype.ts';
import { fsHost } from '../compiler/host.ts';
import { exportCheckpoint } from '../runtime/training/export.ts';
import { buildHeader, type WriterTensor } from '../runtime/formats/safetensors-writer.ts';
import { listCheckpoints } from '../runtime/training/checkpoints.ts';
import { writeTrainingCheckpoint } from '../runtime/training/writer.ts';

const args = process.argv.slice(2);
const arg = (name: string, def: string) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1]! : def;
};
const ROOT = join(import.meta.dirname, '..');
const FIX = join(ROOT, 'tests/fixtures/training/outputs/000-STDiT3-XL-2/epoch1-global_step6');

if (args[0] === '--child-export') {
  const [, src, out, dtype] = args;
  const t0 = performance.now();
  const r = await exportCheckpoint(src!, { from: 'ema', out: out!, dtype: dtype === 'keep' ? undefined : (dtype as 'bf16') });
  process.stdout.write(JSON.stringify({ bytes: r.bytes, seconds: (performance.now() - t0) / 1000, maxRssMiB: process.resourceUsage().maxRSS / 1024 }) + '\n');
  process.exit(0);
}

const tmp = mkdtempSync(join(tmpdir(), 'sorac-bench-ckpt-'));
const gb = (n: number) => `${(n / 1e9).toFixed(2)} GB`;
try {
  // ---- 1. ls over N sparse multi-GB checkpoints ----------------------------------------------
  const count = Number(arg('--count', '100'));
  const m = compile({ file: join(ROOT, 'examples/stdit3.sora'), host: fsHost, config: {} });
  const keys = Object.entries(m.keymap!.tensors).map(([k, e]) => [k, e.shape] as const);
  const params = keys.reduce((a, [, s]) => a + s.reduce((x, y) => x * y, 1), 0);
  const sparse = (path: string, t: Map<string, WriterTensor>, metadata?: Record<string, string>) => {
    const { headerBytes, dataLength } = buildHeader(t, metadata);
    const fd = openSync(path, 'w');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(headerBytes.length));
    writeSync(fd, len, 0, 8, 0);
    writeSync(fd, headerBytes, 0, headerBytes.length, 8);
    ftruncateSync(fd, 8 + headerBytes.length + dataLength);
    closeSync(fd);
    return 8 + headerBytes.length + dataLength;
  };
  const tensors = (dtype: DType, prefix = '') => new Map(keys.map(([k, s]) => [prefix + k, { dtype, shape: s, data: new Uint8Array(0) } as WriterTensor]));
  const SHARD = 4096 * 1024 * 1024;
  const shardsOf = (t: Map<string, WriterTensor>) => {
    const out: Map<string, WriterTensor>[] = [new Map()];
    let size = 0;
    for (const [k, v] of t) {
      const n = v.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[v.dtype];
      if (size + n > SHARD && out[out.length - 1]!.size) {
        out.push(new Map());
        size = 0;
      }
      out[out.length - 1]!.set(k, v);
      size += n;
    }
    return out;
  };
  const exp = join(tmp, 'outputs', '000-STDiT3-XL-2');
  mkdirSync(exp, { recursive: true });
  const t0 = performance.now();
  let apparent = 0;
  // the optimizer state: param id i → state.i.exp_avg / exp_avg_sq (f32)
  const optState = new Map<string, WriterTensor>();
  keys.forEach(([, s], i) => {
    optState.set(`state.${i}.exp_avg`, { dtype: 'f32', shape: s, data: new Uint8Array(0) });
    optState.set(`state.${i}.exp_avg_sq`, { dtype: 'f32', shape: s, data: new Uint8Array(0) });
  });
  for (let c = 0; c < count; c++) {
    const d = join(exp, `epoch${Math.floor(c / 10)}-global_step${(c + 1) * 500}`);
    mkdirSync(join(d, 'model'), { recursive: true });
    mkdirSync(join(d, 'optimizer'));
    const wm: Record<string, string> = {};
    let total = 0;
    shardsOf(tensors('bf16')).forEach((sh, i) => {
      const name = `model-${String(i + 1).padStart(5, '0')}.safetensors`;
      apparent += sparse(join(d, 'model', name), sh, { format: 'pt' });
      for (const [k, v] of sh) {
        wm[k] = name;
        total += (v.shape.reduce((a, b) => a * b, 1) * 2) / 1024 / 1024;
      }
    });
    writeFileSync(join(d, 'model', 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: wm }, null, 2) + '\n');
    apparent += sparse(join(d, 'ema.safetensors'), tensors('bf16'));
    apparent += sparse(join(d, 'master.safetensors'), tensors('f32'));
    const owm: Record<string, string> = {};
    shardsOf(optState).forEach((sh, i) => {
      const name = `optimizer-${String(i + 1).padStart(5, '0')}.safetensors`;
      apparent += sparse(join(d, 'optimizer', name), sh, { format: 'pt' });
      for (const k of sh.keys()) owm[k.split('.')[1]!] = name;
    });
    writeFileSync(join(d, 'optimizer', 'optimizer.safetensors.index.json'), JSON.stringify({ metadata: { param_groups: 'pytorch_optim_group.bin', total_size: 1 }, weight_map: owm }, null, 2) + '\n');
    copyFileSync(join(FIX, 'optimizer', 'pytorch_optim_group.bin'), join(d, 'optimizer', 'pytorch_optim_group.bin'));
    copyFileSync(join(FIX, 'lr_scheduler'), join(d, 'lr_scheduler'));
    copyFileSync(join(FIX, 'sampler'), join(d, 'sampler'));
    writeFileSync(join(d, 'running_states.json'), JSON.stringify({ epoch: Math.floor(c / 10), step: c, global_step: (c + 1) * 500, batch_size: 4, actual_update_step: (c + 1) * 500 }, null, 4));
  }
  const onDisk = Number(execFileSync('du', ['-sk', exp]).toString().split('\t')[0]) * 1024;
  console.log(`ckpt ls: ${count} checkpoints of STDiT3-XL/2 (${(params / 1e9).toFixed(2)} B params, ${keys.length} tensors): ${gb(apparent)} apparent, ${(onDisk / 1e6).toFixed(1)} MB on disk (sparse); made in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const runs: number[] = [];
  let l;
  for (let i = 0; i < 5; i++) {
    const s = performance.now();
    l = await listCheckpoints(exp);
    runs.push(performance.now() - s);
  }
  if (!l!.checkpoints.every((c) => c.complete)) throw new Error(`bench dir not complete: ${l!.checkpoints.find((c) => !c.complete)!.problems[0]}`);
  runs.sort((a, b) => a - b);
  console.log(`  listCheckpoints (in-process, headers + sizes of ${l!.checkpoints.length} checkpoints): median ${runs[2]!.toFixed(0)} ms, min ${runs[0]!.toFixed(0)} ms, max ${runs[4]!.toFixed(0)} ms; latest ${l!.latest?.name}`);
  for (const env of [{}, { SORAC_FROM_SOURCE: '1' }]) {
    const s = performance.now();
    const r = spawnSync(process.execPath, [join(ROOT, 'bin/sorac.js'), 'ckpt', 'ls', exp], { env: { ...process.env, ...env }, encoding: 'utf8' });
    const ms = performance.now() - s;
    console.log(`  sorac ckpt ls (cold process${'SORAC_FROM_SOURCE' in env ? ', from sources via tsx' : ', bundle if fresh'}): ${ms.toFixed(0)} ms wall, exit ${r.status}`);
  }
  if (!args.includes('--keep')) rmSync(exp, { recursive: true, force: true });

  // ---- 2. export throughput vs cp --------------------------------------------------------------
  const realGB = Number(arg('--real-gb', '1'));
  const per = 4 * 1024 * 1024; // 4 Mi f32 elements = 16 MiB per tensor
  const n = Math.max(1, Math.round((realGB * 1e9) / (per * 4)));
  const model = new Map<string, WriterTensor>();
  const buf = new Float32Array(per);
  randomFillSync(new Uint8Array(buf.buffer));
  for (let i = 0; i < buf.length; i++) buf[i] = (buf[i]! % 1) || 0.5; // finite values
  for (let i = 0; i < n; i++) model.set(`blocks.${i}.weight`, { dtype: 'f32', shape: [1024, per / 1024], data: new Uint8Array(buf.buffer) });
  const realExp = join(tmp, 'real');
  const w0 = performance.now();
  const w = await writeTrainingCheckpoint(realExp, { epoch: 0, step: 1, globalStep: 1, model, ema: model, copyFrom: FIX });
  const wSec = (performance.now() - w0) / 1000;
  const emaPath = join(w.dir, 'ema.safetensors');
  const size = statSync(emaPath).size;
  console.log(`\nexport: real checkpoint with a ${gb(size)} f32 ema.safetensors (${n} tensors of 16 MiB); writeTrainingCheckpoint (model + ema, fsync, rename): ${wSec.toFixed(2)} s (${gb((2 * size) / wSec)}/s)`);
  execFileSync('cat', [emaPath], { stdio: ['ignore', 'ignore', 'ignore'] }); // warm
  // interleaved rounds (this VM's disk is noisy): cp + sync vs export as stored vs export to bf16
  const times: Record<string, number[]> = { cp: [], cat: [], keep: [], bf16: [] };
  let rss: Record<string, number> = {};
  let written: Record<string, number> = {};
  const rounds = Number(arg('--rounds', '3'));
  for (let round = 0; round < rounds; round++) {
    const s = performance.now();
    execFileSync('cp', [emaPath, join(tmp, 'cp.safetensors')]);
    execFileSync('sync', [join(tmp, 'cp.safetensors')]);
    times.cp!.push((performance.now() - s) / 1000);
    rmSync(join(tmp, 'cp.safetensors'));
    const c0 = performance.now();
    execFileSync('sh', ['-c', `cat '${emaPath}' > '${join(tmp, 'cat.safetensors')}' && sync '${join(tmp, 'cat.safetensors')}'`]);
    times.cat!.push((performance.now() - c0) / 1000);
    rmSync(join(tmp, 'cat.safetensors'));
    for (const dtype of ['keep', 'bf16']) {
      const out = join(tmp, `export-${dtype}.safetensors`);
      const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/ckpt.ts'), '--child-export', w.dir, out, dtype], { encoding: 'utf8', cwd: ROOT });
      if (r.status !== 0) throw new Error(r.stderr);
      const j = JSON.parse(r.stdout.trim().split('\n').pop()!);
      times[dtype]!.push(j.seconds);
      rss[dtype] = Math.max(rss[dtype] ?? 0, j.maxRssMiB);
      written[dtype] = j.bytes;
      rmSync(out, { force: true });
    }
  }
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
  console.log(`  median of ${rounds} interleaved rounds (all fsync'd; page cache warm for the source):`);
  console.log(`  cp + sync FILE (copy_file_range): ${med(times.cp!).toFixed(2)} s  ${gb(size / med(times.cp!))}/s   (runs: ${times.cp!.map((x) => x.toFixed(2)).join(', ')})`);
  console.log(`  cat > FILE + sync (user copy):    ${med(times.cat!).toFixed(2)} s  ${gb(size / med(times.cat!))}/s   (runs: ${times.cat!.map((x) => x.toFixed(2)).join(', ')})`);
  for (const d of ['keep', 'bf16'])
    console.log(`  ckpt export --dtype ${d.padEnd(4)}:          ${med(times[d]!).toFixed(2)} s  ${gb(size / med(times[d]!))}/s of input, ${gb(written[d]!)} written, peak RSS ${rss[d]!.toFixed(0)} MiB   (runs: ${times[d]!.map((x) => x.toFixed(2)).join(', ')})`);
  const s2 = performance.now();
  const sh = await exportCheckpoint(w.dir, { from: 'ema', out: join(tmp, 'hf'), shardSize: 256e6 });
  const shSec = (performance.now() - s2) / 1000;
  console.log(`  ckpt export --shard-size 256MB (in-process): ${shSec.toFixed(2)} s  ${gb(size / shSec)}/s, ${sh.files.length - 1} shards`);
} finally {
  if (!args.includes('--keep')) rmSync(tmp, { recursive: true, force: true });
  else console.log(`kept ${tmp}`);
}
