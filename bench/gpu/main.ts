/**
 * The node side of the GPU check (bench/gpu/run.sh runs it; bundled to dist/gpu-bench.mjs by
 * bench/gpu/pack.sh so that the GPU machine needs no TypeScript loader and no npm).
 *
 *   node dist/gpu-bench.mjs doctor                 sorac doctor --json, and a one-line summary
 *   node dist/gpu-bench.mjs parity [--device D]    every golden case: f32 max |diff| <= 1e-4, and the
 *                                                  bf16 policy's rel. L2 vs the golden bf16 outputs
 *   node dist/gpu-bench.mjs time DIR [--device D]  time sorac on the models torch_bench.py wrote to DIR
 *                                                  (DIR/manifest.json), median of >= 10 runs after warm-up,
 *                                                  peak GPU memory sampled with nvidia-smi
 *   node dist/gpu-bench.mjs table DIR              the one table: sorac vs PyTorch per model
 *   node dist/gpu-bench.mjs generate DIR [--device D] [--steps N] [--resolution 240p] [--frames 51]
 *                                                  a whole `sorac generate` of the 1.2 clip (240p, 9:16, 51 frames,
 *                                                  CFG, bf16) with the bundled 1.2 pipeline on the weights in DIR:
 *                                                  wall time per stage, peak GPU memory, peak RSS, the contact sheet
 *
 * Results go to $OUT (or ./bench/results) as JSON as well as to stdout.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { doctor } from '../../api/devices.ts';
import { generate as generateVideo, loadPipeline } from '../../api/pipeline.ts';
import { createSession, runGraph } from '../../api/session.ts';
import { compile, traceEntry } from '../../compiler/compile.ts';
import { fsHost } from '../../compiler/host.ts';
import { bf16ToF32 } from '../../core/convert.ts';
import type { HostTensor } from '../../core/host-tensor.ts';
import { safetensorsWeightSource } from '../../runtime/execution/binding.ts';
import { planMicroBatch, runMicroBatched } from '../../runtime/execution/micro-batch.ts';
import { readTensorsFile } from '../../runtime/formats/tensors-io.ts';

/** The sorac checkout: the first folder upwards holding examples/ (the bundle lives in dist/, the source in bench/gpu/). */
function findRoot(from: string): string {
  for (let d = from; ; d = dirname(d)) {
    if (existsSync(join(d, 'examples')) && existsSync(join(d, 'std'))) return d;
    if (dirname(d) === d) return process.cwd();
  }
}
const ROOT = process.env.SORAC_ROOT ?? findRoot(import.meta.dirname);
const OUT = process.env.OUT ?? join(ROOT, 'bench', 'results');
const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : dflt);
const device = opt('--device', 'cuda') as 'cuda' | 'cpu' | 'auto';

function save(name: string, data: unknown): void {
  mkdirSync(OUT, { recursive: true });
  writeFileSync(join(OUT, name), JSON.stringify(data, null, 2) + '\n');
}

// ------------------------------------------------------------------------------------------------
// golden parity on the device

interface Case {
  model: string;
  name: string;
  dir: string;
  file: string;
  config: Record<string, unknown>;
}

function flatKwargs(dir: string): Record<string, unknown> {
  const kw = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')).constructor_kwargs as Record<string, Record<string, unknown>>;
  if (kw.OpenSoraVAE_V1_3_PiplineConfig) {
    // vae_v13: nested encoder/decoder kwargs (tests/helpers/vae-v13-config.ts)
    const c = kw.OpenSoraVAE_V1_3_PiplineConfig as Record<string, Record<string, unknown>>;
    const enc = c.encoder!;
    const dec = c.decoder!;
    return { z_channels: enc.z_channels, ch: enc.ch, ch_mult: enc.ch_mult, num_res_blocks: enc.num_res_blocks, in_channels: enc.in_channels, out_ch: dec.out_ch, double_z: enc.double_z, down_sampling_layer: enc.down_sampling_layer, temporal_up_layers: dec.temporal_up_layers, ...kw.OpenSoraVAE_V1_3_Pipline };
  }
  return Object.assign({}, ...Object.values(kw));
}

function cases(): Case[] {
  const out: Case[] = [];
  for (const root of ['golden', 'golden-extra']) {
    const base = join(ROOT, 'tests', 'fixtures', root);
    for (const model of readdirSync(base)) {
      if (!existsSync(join(ROOT, 'examples', `${model}.sora`))) continue;
      for (const name of readdirSync(join(base, model))) {
        const dir = join(base, model, name);
        if (existsSync(join(dir, 'meta.json')) && existsSync(join(dir, 'outputs.safetensors'))) out.push({ model, name: `${root === 'golden' ? '' : 'extra/'}${name}`, dir, file: join(ROOT, 'examples', `${model}.sora`), config: flatKwargs(dir) });
      }
    }
  }
  return out;
}

const maxAbs = (a: HostTensor, b: HostTensor) => {
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  let m = x.length === y.length ? 0 : Infinity;
  for (let i = 0; i < y.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!) || (Number.isNaN(x[i]!) ? Infinity : 0));
  return m;
};
const relL2 = (a: HostTensor, b: HostTensor) => {
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  let n = 0;
  let d = 0;
  for (let i = 0; i < y.length; i++) (n += (x[i]! - y[i]!) ** 2), (d += y[i]! ** 2);
  return Math.sqrt(n / Math.max(d, 1e-30));
};

interface ParityRow {
  case: string;
  entry: string;
  precision: 'f32' | 'bf16';
  device: string;
  outputs: Record<string, number>;
  limit: number;
  ok: boolean;
  error?: string;
}

/** bf16 policy vs the golden bf16 outputs: the CPU emulation measures 0.010-0.012 (DiTs), 0.011-0.040 (VAEs), 0 (T5). */
const BF16_LIMIT = 0.03;

async function parity(): Promise<number> {
  const rows: ParityRow[] = [];
  for (const c of cases()) {
    const { tensors: inputs } = await readTensorsFile(join(c.dir, 'inputs.safetensors'));
    const { tensors: ref } = await readTensorsFile(join(c.dir, 'outputs.safetensors'));
    for (const precision of ['f32', 'bf16'] as const) {
      if (precision === 'bf16' && (!existsSync(join(c.dir, 'model.bf16.safetensors')) || ![...ref.keys()].some((k) => k.endsWith('_bf16')))) continue;
      const m = compile({ file: c.file, host: fsHost, config: { values: c.config }, ...(precision === 'bf16' ? { dtype: { params: 'bf16', compute: 'bf16' } } : {}) });
      if (m.diagnostics.some((d) => d.severity === 'error')) {
        rows.push({ case: `${c.model}/${c.name}`, entry: '-', precision, device, outputs: {}, limit: 0, ok: false, error: m.diagnostics.find((d) => d.severity === 'error')!.message });
        continue;
      }
      for (const e of m.entries) {
        if (e.inputs.some((i) => !i.optional && !inputs.has(i.name))) continue;
        const tr = traceEntry(m, e.name, { absent: new Set(e.inputs.filter((i) => i.optional && !inputs.has(i.name)).map((i) => i.name)) });
        if (!tr.graph) continue;
        const g = tr.graph;
        if (g.inputs.some((i) => inputs.get(i.name)!.shape.length !== i.shape.length)) continue;
        const wanted = g.outputs.filter((o) => ref.has(precision === 'bf16' ? `${o.name}_bf16` : o.name));
        if (!wanted.length) continue;
        const w = await safetensorsWeightSource([join(c.dir, precision === 'bf16' ? 'model.bf16.safetensors' : 'model.safetensors')]);
        const row: ParityRow = { case: `${c.model}/${c.name}`, entry: e.name, precision, device, outputs: {}, limit: precision === 'f32' ? 1e-4 : BF16_LIMIT, ok: false };
        try {
          const feed = new Map([...inputs].filter(([k]) => g.inputs.some((i) => i.name === k)));
          const r = await runGraph(g, w, feed, { device });
          row.device = r.device;
          for (const o of wanted) row.outputs[o.name] = precision === 'f32' ? maxAbs(r.outputs.get(o.name)!, ref.get(o.name)!) : relL2(r.outputs.get(o.name)!, ref.get(`${o.name}_bf16`)!);
          // bf16: DiTs and T5 within 0.03 of upstream's bf16 run (the CPU emulation: 0.010-0.012, T5 0); VAEs, whose
          // upstream bf16 conv/group-norm kernels round differently, within twice upstream's own f32-vs-bf16 gap
          if (precision === 'bf16' && c.model.includes('vae')) row.limit = Math.max(BF16_LIMIT, ...wanted.filter((o) => ref.has(o.name)).map((o) => 2 * relL2(ref.get(o.name)!, ref.get(`${o.name}_bf16`)!)));
          row.ok = Object.values(row.outputs).every((v) => v <= row.limit) && (device !== 'cuda' || r.device === 'cuda');
        } catch (err) {
          row.error = `${(err as { code?: string }).code ?? ''} ${(err as Error).message.split('\n')[0]}`.trim();
        } finally {
          await w.close();
        }
        rows.push(row);
        console.log(`${row.ok ? 'ok  ' : 'FAIL'} ${row.case.padEnd(38)} ${row.entry.padEnd(8)} ${row.precision.padEnd(5)} ${row.device.padEnd(5)} ${row.error ?? `${Object.entries(row.outputs).map(([k, v]) => `${k} ${precision === 'f32' ? 'max|d|' : 'relL2'} ${v.toExponential(2)}`).join(', ')} (limit ${row.limit.toExponential(1)})`}`);
      }
    }
  }
  const bad = rows.filter((r) => !r.ok);
  console.log(`parity on ${device}: ${rows.length - bad.length}/${rows.length} ok (f32 max |diff| <= 1e-4; bf16 policy rel. L2 vs golden bf16 <= max(${BF16_LIMIT}, 2 x upstream's f32-vs-bf16 gap))`);
  save('parity.json', { device, rows });
  return bad.length ? 1 : 0;
}

// ------------------------------------------------------------------------------------------------
// timing

/** Samples nvidia-smi's memory.used (MiB) of GPU `index` every 50 ms until stopped. */
function memorySampler(index = 0): { stop(): number | undefined } {
  let peak: number | undefined;
  let p: ChildProcess | undefined;
  try {
    p = spawn('nvidia-smi', [`--id=${index}`, '--query-gpu=memory.used', '--format=csv,noheader,nounits', '-lms', '50'], { stdio: ['ignore', 'pipe', 'ignore'] });
    p.on('error', () => {});
    p.stdout!.on('data', (d: Buffer) => {
      for (const l of d.toString().split('\n')) if (/^\d+/.test(l.trim())) peak = Math.max(peak ?? 0, Number(l.trim()));
    });
  } catch {
    p = undefined;
  }
  return {
    stop() {
      p?.kill();
      return peak;
    },
  };
}

function gpuMemoryUsed(index = 0): number | undefined {
  const r = spawnSync('nvidia-smi', [`--id=${index}`, '--query-gpu=memory.used', '--format=csv,noheader,nounits'], { encoding: 'utf8' });
  return r.status === 0 ? Number(r.stdout.trim()) : undefined;
}

interface ManifestItem {
  name: string;
  example: string;
  config: Record<string, unknown>;
  dtype?: Record<string, string>;
  entry: string;
  weights: string;
  inputs: string;
  /** PyTorch's outputs on the same weights and inputs (sorac's are compared with them: same model, same data). */
  outputs?: string;
  absent?: string[];
  microBatch?: { axis: string; size: number };
  runs: number;
  warmup: number;
  torch?: { median_ms: number; times_ms: number[]; peak_allocated_mib: number; peak_nvidia_smi_mib?: number; note?: string };
}

const toF32 = (t: HostTensor): HostTensor => (t.dtype === 'bf16' ? { dtype: 'f32', shape: t.shape, data: bf16ToF32(t.data as Uint16Array) } : t);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function time(dir: string): Promise<number> {
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { items: ManifestItem[]; gpu?: string };
  const results: Record<string, unknown>[] = [];
  for (const it of manifest.items) {
    const m = compile({ file: join(ROOT, it.example), host: fsHost, config: { values: it.config }, ...(it.dtype ? { dtype: it.dtype } : {}) });
    const err = m.diagnostics.find((d) => d.severity === 'error');
    if (err) {
      results.push({ name: it.name, error: `${err.code} ${err.message}` });
      continue;
    }
    const tr = traceEntry(m, it.entry, { absent: new Set(it.absent ?? []) });
    if (!tr.graph) {
      results.push({ name: it.name, error: tr.diagnostics.map((d) => d.message).join('; ') });
      continue;
    }
    const { tensors: inputs } = await readTensorsFile(join(dir, it.inputs));
    const w = await safetensorsWeightSource([join(dir, it.weights)]);
    const base = gpuMemoryUsed();
    const sampler = memorySampler();
    const notes: string[] = [];
    try {
      const t0 = performance.now();
      const s = await createSession(tr.graph, w, { device, onInfo: (n) => notes.push(n) });
      const createMs = performance.now() - t0;
      const feed = new Map([...inputs].filter(([k]) => tr.graph!.inputs.some((i) => i.name === k)));
      const plan = it.microBatch ? planMicroBatch(tr.graph, { axis: it.microBatch.axis }) : undefined;
      const once = async () => {
        const a = performance.now();
        if (plan) await runMicroBatched(s, plan, feed, { size: it.microBatch!.size });
        else await s.run(feed);
        return performance.now() - a;
      };
      // the same computation as PyTorch's? (bf16 on both sides: rel. L2 of about 1e-2 is expected)
      let relDiff: Record<string, number> | undefined;
      if (it.outputs && existsSync(join(dir, it.outputs))) {
        const { tensors: ref } = await readTensorsFile(join(dir, it.outputs));
        const got = plan ? (await runMicroBatched(s, plan, feed, { size: it.microBatch!.size })).outputs! : await s.run(feed);
        relDiff = Object.fromEntries([...ref].filter(([k]) => got.has(k)).map(([k, v]) => [k, relL2(toF32(got.get(k)!), v)]));
      }
      for (let i = 0; i < it.warmup; i++) await once();
      const times: number[] = [];
      for (let i = 0; i < it.runs; i++) times.push(await once());
      await s.release();
      const peak = sampler.stop();
      const r = { name: it.name, device: s.device, create_ms: createMs, median_ms: median(times), times_ms: times, peak_nvidia_smi_mib: peak !== undefined && base !== undefined ? peak - base : undefined, rel_l2_vs_torch: relDiff, notes };
      results.push(r);
      console.log(`${it.name}: sorac ${s.device} median ${r.median_ms.toFixed(1)} ms over ${it.runs} runs (created in ${(createMs / 1000).toFixed(1)} s)${r.peak_nvidia_smi_mib !== undefined ? `, peak +${r.peak_nvidia_smi_mib} MiB` : ''}${relDiff ? `; vs PyTorch's output: ${Object.entries(relDiff).map(([k, v]) => `${k} rel. L2 ${v.toExponential(2)}`).join(', ')}` : ''}`);
    } catch (e) {
      sampler.stop();
      results.push({ name: it.name, error: `${(e as { code?: string }).code ?? ''} ${(e as Error).message.split('\n')[0]}`.trim(), notes });
      console.log(`${it.name}: sorac failed: ${(e as Error).message.split('\n')[0]}`);
    } finally {
      await w.close();
    }
  }
  writeFileSync(join(dir, 'sorac.json'), JSON.stringify({ device, results }, null, 2));
  save('sorac-times.json', { device, results });
  return results.some((r) => 'error' in r) ? 1 : 0;
}

function table(dir: string): number {
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { items: ManifestItem[]; gpu?: string; torch_version?: string };
  const sorac = existsSync(join(dir, 'sorac.json')) ? (JSON.parse(readFileSync(join(dir, 'sorac.json'), 'utf8')) as { results: { name: string; median_ms?: number; peak_nvidia_smi_mib?: number; error?: string; device?: string; rel_l2_vs_torch?: Record<string, number> }[] }).results : [];
  const lines = [`GPU: ${manifest.gpu ?? '?'}; PyTorch ${manifest.torch_version ?? '?'} eager bf16 (SDPA attention) vs sorac (onnxruntime 1.29 CUDA), median of >= 10 runs after warm-up`, ''];
  const head = ['model', 'torch ms', 'sorac ms', 'sorac/torch', 'torch peak MiB (alloc / smi)', 'sorac peak MiB (smi)', 'outputs rel. L2'];
  const rows = manifest.items.map((it) => {
    const s = sorac.find((x) => x.name === it.name);
    const t = it.torch;
    const ratio = s?.median_ms && t?.median_ms ? (s.median_ms / t.median_ms).toFixed(2) : '-';
    return [it.name, t ? t.median_ms.toFixed(1) : '-', s?.median_ms ? s.median_ms.toFixed(1) : s?.error ? `error` : '-', ratio, t ? `${t.peak_allocated_mib.toFixed(0)} / ${t.peak_nvidia_smi_mib ?? '-'}` : '-', s?.peak_nvidia_smi_mib !== undefined ? String(s.peak_nvidia_smi_mib) : '-', s?.rel_l2_vs_torch ? Object.values(s.rel_l2_vs_torch).map((v) => v.toExponential(1)).join(' ') : '-'];
  });
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  lines.push(head.map((h, i) => h.padEnd(width[i]!)).join('  '));
  for (const r of rows) lines.push(r.map((c, i) => c.padEnd(width[i]!)).join('  '));
  for (const s of sorac.filter((x) => x.error)) lines.push(`  ${s.name}: ${s.error}`);
  const text = lines.join('\n') + '\n';
  process.stdout.write(text);
  mkdirSync(OUT, { recursive: true });
  writeFileSync(join(OUT, 'table.txt'), text);
  save('results.json', { manifest, sorac });
  return 0;
}

// ------------------------------------------------------------------------------------------------
// a whole generate run

async function generateClip(dir: string): Promise<number> {
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { items: ManifestItem[] };
  const item = (example: string) => manifest.items.find((i) => i.example === example);
  const te = item('examples/t5.sora');
  const tr = item('examples/stdit3.sora');
  const vae = item('examples/vae_pipeline_v12.sora');
  if (!te || !tr || !vae) {
    console.log(`generate: needs the t5, stdit3 and vae weights in ${dir} (run.sh's timing step writes them); have: ${manifest.items.map((i) => i.name).join(', ')}`);
    return 1;
  }
  const tokenizer = join(ROOT, 'tests', 'fixtures', 'tokenizer', 't5like.model');
  const maxLength = Number(tr.config.model_max_length ?? 300);
  const p = loadPipeline({
    file: join(ROOT, 'examples', 'pipelines', 'opensora_v1_2.sora'),
    weights: { tokenizer, text_encoder: join(dir, te.weights), transformer: join(dir, tr.weights), vae: join(dir, vae.weights) },
    componentValues: { text_encoder: te.config, transformer: tr.config, vae: vae.config, tokenizer: { max_length: maxLength } },
    dtype: { '*': { params: 'bf16', compute: 'bf16' } },
  });
  const err = p.diagnostics.find((d) => d.severity === 'error');
  if (err) {
    console.log(`generate: the pipeline does not compile: ${err.code} ${err.message}`);
    save('generate.json', { error: `${err.code} ${err.message}` });
    return 1;
  }
  const steps = Number(opt('--steps', '30'));
  // the release's clip; smaller for a dry run of the script with tiny models
  const resolution = opt('--resolution', '240p');
  const numFrames = Number(opt('--frames', '51'));
  const outDir = join(OUT, 'generate');
  mkdirSync(outDir, { recursive: true });
  const base = gpuMemoryUsed();
  const sampler = memorySampler();
  const stages: Record<string, { ms: number; device?: string }> = {};
  const stepMs: number[] = [];
  const t0 = performance.now();
  try {
    const r = await generateVideo(p, {
      prompts: ['a red panda eating bamboo in a snowy forest'],
      steps,
      resolution,
      numFrames,
      // PyTorch wrote bf16 weights (no rounding); a dry run with f32 stand-in weights rounds them
      allowLossy: true,
      device,
      out: join(outDir, 'clip.mp4'),
      force: true,
      onEvent: (e) => {
        if (e.type === 'stage' && e.state === 'end') stages[e.stage] = { ms: e.ms!, ...(e.device ? { device: e.device } : {}) };
        if (e.type === 'step') stepMs.push(e.ms);
        if (e.type === 'note') console.log(`  ${e.message}`);
      },
    });
    const wall = performance.now() - t0;
    const peak = sampler.stop();
    const res = {
      clip: `${resolution} 9:16, ${numFrames} frames, CFG 7 (batch 2), bf16, bundled pipeline examples/pipelines/opensora_v1_2.sora`,
      steps,
      device: Object.fromEntries(Object.entries(stages).map(([k, v]) => [k, v.device])),
      wall_ms: wall,
      stage_ms: Object.fromEntries(Object.entries(stages).map(([k, v]) => [k, v.ms])),
      // step events carry the time since the stage began: per-step times are the differences (the first one also
      // holds loading the weights and creating the session, so it is left out)
      step_ms_median: stepMs.length > 1 ? median(stepMs.slice(1).map((t, i) => t - stepMs[i]!)) : undefined,
      peak_gpu_mib: peak !== undefined && base !== undefined ? peak - base : undefined,
      peak_rss_mib: Math.round(process.resourceUsage().maxRSS / 1024),
      outputs: r.outputs.map((o) => o.path),
    };
    save('generate.json', res);
    console.log(`generate: ${(wall / 1000).toFixed(1)} s (${Object.entries(res.stage_ms).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s on ${res.device[k]}`).join(', ')}; ${steps} steps, median step ${res.step_ms_median?.toFixed(0)} ms), peak GPU +${res.peak_gpu_mib ?? '?'} MiB, peak RSS ${res.peak_rss_mib} MiB`);
    return Object.values(res.device).every((d) => d === 'cuda' || device !== 'cuda') ? 0 : 1;
  } catch (e) {
    sampler.stop();
    const msg = `${(e as { code?: string }).code ?? ''} ${(e as Error).message}`.trim();
    console.log(`generate failed: ${msg}`);
    save('generate.json', { error: msg, stages });
    return 1;
  }
}

async function main(): Promise<number> {
  const cmd = args[0];
  if (cmd === 'doctor') {
    const r = await doctor({ hash: true });
    save('doctor.json', r);
    for (const c of r.checks) console.log(`${c.status.padEnd(4)} ${c.title}: ${c.detail.split('\n')[0]}${c.fix && c.status !== 'ok' ? `\n     fix: ${c.fix}` : ''}`);
    console.log(r.ok ? 'doctor: CUDA works' : 'doctor: CUDA does not work here');
    return r.ok ? 0 : 1;
  }
  if (cmd === 'parity') return parity();
  if (cmd === 'time') return time(args[1]!);
  if (cmd === 'table') return table(args[1]!);
  if (cmd === 'generate') return generateClip(args[1]!);
  console.error('usage: gpu-bench.mjs doctor | parity [--device D] | time DIR [--device D] | table DIR | generate DIR [--device D] [--steps N]');
  return 2;
}

process.exitCode = await main();
