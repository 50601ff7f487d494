/**
 * Session creation time and peak RSS when binding a large f32 checkpoint to an onnxruntime
 * session: zero-copy external data (hardlinked safetensors) vs copying (staged temp file, inline
 * initializers) vs converting (bf16 checkpoint), with and without ORT prepacking.
 * Each case runs in a fresh child process.
 *
 *   npx tsx bench/session-binding.ts                # W: f32[4096, 32000] = 500 MiB
 *   npx tsx bench/session-binding.ts --rows 2048    # smaller
 *   npx tsx bench/session-binding.ts --reps 3
 *   npx tsx bench/session-binding.ts --cases 0,6,7    # only these cases (indices into CASES)
 *
 * Model: y[1,32000] = x[1,4096] . W  (MatMul; ORT prepacks MatMul's constant B unless disabled).
 * The last two cases store W as a torch Linear weight [out, in] and apply it with Transpose +
 * MatMul (ORT constant-folds the Transpose into an anonymous copy) or with Gemm transB=1.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IrGraph, IrNode, IrValue } from '../core/ir.ts';
import { f32ToBf16 } from '../core/convert.ts';
import { safetensorsWeightSource } from '../runtime/execution/binding.ts';
import { writeSafetensors } from '../runtime/formats/safetensors-writer.ts';
import { createSession } from '../api/session.ts';
import { loadOrt } from '../runtime/execution/ort.ts';
import { type SessionOptions } from '../runtime/execution/session.ts';

interface Case {
  name: string;
  file: 'f32' | 'bf16' | 'f32t';
  graphDtype: 'f32' | 'bf16';
  opts: SessionOptions;
  /** how a torch Linear weight [out, in] is applied */
  linear?: 'transpose-matmul' | 'gemm-transb';
}

const CASES: Case[] = [
  { name: 'external (hardlink), no prepack [default]', file: 'f32', graphDtype: 'f32', opts: { binding: 'auto' } },
  { name: 'external (hardlink), prepack', file: 'f32', graphDtype: 'f32', opts: { binding: 'auto', prepacking: true } },
  { name: 'staged copy (temp file), no prepack', file: 'f32', graphDtype: 'f32', opts: { binding: 'staged' } },
  { name: 'inline initializers, no prepack', file: 'f32', graphDtype: 'f32', opts: { binding: 'inline' } },
  { name: 'bf16 ckpt -> f32 graph (JS convert), no prepack', file: 'bf16', graphDtype: 'f32', opts: { binding: 'auto' } },
  { name: 'bf16 ckpt external + in-graph Cast, no prepack', file: 'bf16', graphDtype: 'bf16', opts: { binding: 'auto' } },
  { name: 'Linear W[out,in]: Transpose + MatMul, external', file: 'f32t', graphDtype: 'f32', opts: { binding: 'auto' }, linear: 'transpose-matmul' },
  { name: 'Linear W[out,in]: Gemm transB=1, external', file: 'f32t', graphDtype: 'f32', opts: { binding: 'auto' }, linear: 'gemm-transb' },
];

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

function graphFor(rows: number, cols: number, wDtype: 'f32' | 'bf16', linear?: Case['linear']): IrGraph {
  let id = 0;
  const v = (name: string, dtype: 'f32' | 'bf16', shape: (number | string)[]): IrValue => ({ id: id++, name, dtype, shape });
  const x = v('x', 'f32', [1, rows]);
  const y = v('y', 'f32', [1, cols]);
  if (linear) {
    const w = v('w', 'f32', [cols, rows]);
    const nodes: IrNode[] = [];
    if (linear === 'gemm-transb') nodes.push({ op: 'Gemm', inputs: [x, w], outputs: [y], attrs: { transB: { kind: 'int', value: 1 } } });
    else {
      const wt = v('wt', 'f32', [rows, cols]);
      nodes.push({ op: 'Transpose', inputs: [w], outputs: [wt], attrs: { perm: { kind: 'ints', value: [1, 0] } } });
      nodes.push({ op: 'MatMul', inputs: [x, wt], outputs: [y], attrs: {} });
    }
    return { name: 'bench', inputs: [x], outputs: [y], nodes, constants: new Map(), weights: [{ value: w, key: 'w' }], opset: 17, metadata: {} };
  }
  const w = v('w', wDtype, [rows, cols]);
  const nodes: IrNode[] = [];
  let b = w;
  if (wDtype === 'bf16') {
    b = v('w_f32', 'f32', [rows, cols]);
    nodes.push({ op: 'Cast', inputs: [w], outputs: [b], attrs: { to: { kind: 'int', value: 1 } } });
  }
  nodes.push({ op: 'MatMul', inputs: [x, b], outputs: [y], attrs: {} });
  return { name: 'bench', inputs: [x], outputs: [y], nodes, constants: new Map(), weights: [{ value: w, key: 'w' }], opset: 17, metadata: {} };
}

const MiB = 1024 * 1024;
const rssMiB = () => process.memoryUsage().rss / MiB;
const peakMiB = () => process.resourceUsage().maxRSS / 1024;

async function child(caseIdx: number, dir: string, rows: number, cols: number): Promise<void> {
  const c = CASES[caseIdx]!;
  await loadOrt();
  const base = rssMiB();
  const src = await safetensorsWeightSource([join(dir, `w.${c.file}.safetensors`)]);
  const t0 = performance.now();
  const s = await createSession(graphFor(rows, cols, c.graphDtype, c.linear), src, { device: 'cpu', ...c.opts });
  const createTotal = performance.now() - t0;
  const afterCreate = rssMiB();
  const peakCreate = peakMiB();
  const x = new Float32Array(rows).fill(0.01);
  const runs: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    await s.run({ x: { dtype: 'f32', shape: [1, rows], data: x } });
    runs.push(performance.now() - t);
  }
  const afterRuns = rssMiB();
  await s.release();
  await src.close();
  const r = { base, createTotal, ortCreate: s.createMs, afterCreate, peakCreate, afterRuns, peak: peakMiB(), run: Math.min(...runs) };
  process.stdout.write(JSON.stringify(r) + '\n');
}

async function parent(): Promise<void> {
  const rows = arg('rows', 4096);
  const cols = arg('cols', 32000);
  const reps = arg('reps', 1);
  const dir = await mkdtemp(join(tmpdir(), 'sorac-bench-binding-'));
  try {
    const n = rows * cols;
    console.log(`W: f32[${rows}, ${cols}] = ${((n * 4) / MiB).toFixed(0)} MiB (bf16 copy ${((n * 2) / MiB).toFixed(0)} MiB); node ${process.version}, ${process.platform}/${process.arch}`);
    const w = new Float32Array(n);
    for (let i = 0; i < n; i++) w[i] = ((i * 2654435761) % 1000) / 1000 - 0.5;
    await writeSafetensors(join(dir, 'w.f32.safetensors'), { w: { dtype: 'f32', shape: [rows, cols], data: new Uint8Array(w.buffer) } });
    await writeSafetensors(join(dir, 'w.f32t.safetensors'), { w: { dtype: 'f32', shape: [cols, rows], data: new Uint8Array(w.buffer) } });
    await writeSafetensors(join(dir, 'w.bf16.safetensors'), { w: { dtype: 'bf16', shape: [rows, cols], data: new Uint8Array(f32ToBf16(w).buffer) } });
    const self = fileURLToPath(import.meta.url);
    const tsx = join(process.cwd(), 'node_modules', '.bin', 'tsx');
    console.log('');
    console.log('| case | create ms (total / ORT) | RSS before | peak RSS | RSS after create | RSS after 3 runs | run ms |');
    console.log('|---|---|---|---|---|---|---|');
    const only = process.argv.includes('--cases') ? process.argv[process.argv.indexOf('--cases') + 1]!.split(',').map(Number) : undefined;
    for (const [i, c] of CASES.entries()) {
      if (only && !only.includes(i)) continue;
      for (let r = 0; r < reps; r++) {
        const out = execFileSync(tsx, [self, '--child', String(i), dir, String(rows), String(cols)], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
        const m = JSON.parse(out.trim().split('\n').pop()!);
        const f = (x: number) => x.toFixed(0);
        console.log(`| ${c.name} | ${f(m.createTotal)} / ${f(m.ortCreate)} | ${f(m.base)} | ${f(m.peak)} | ${f(m.afterCreate)} | ${f(m.afterRuns)} | ${m.run.toFixed(1)} |`);
      }
    }
    console.log('\nRSS in MiB. create total = createSession (links/staging/emit + ORT); peak = process maxRSS.');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--child') {
  await child(Number(process.argv[3]), process.argv[4]!, Number(process.argv[5]), Number(process.argv[6]));
} else {
  await parent();
}
