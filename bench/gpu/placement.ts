/**
 * Where onnxruntime 1.29's CUDA provider places every node of sorac's graphs, on a machine WITHOUT
 * a GPU: the real provider is loaded against stand-in CUDA libraries (bench/gpu/make-stub-cuda.py),
 * sessions are created with `executionProviders: ['cuda']` and ORT's verbose "Node placements" log
 * is read. For every bundled example at its golden config, f32/bf16/f16 compute, opset 17 and 22,
 * as sorac lowers it for CUDA (and, with --raw, as traced), it prints whether the session is created
 * and which float nodes would run on the CPU provider (host round trips). i64 shape arithmetic that
 * ORT keeps on the CPU on purpose is counted separately.
 *
 *   npx tsx bench/gpu/placement.ts [--raw] [--only stdit3,sd_vae]
 *
 * Environment: SORAC_CUDA_PROVIDER (a .tgz/.nupkg/folder for `sorac setup cuda --from`; default: the
 * verified cache or npm), SORAC_STUB_CUDA (a folder of stand-in libraries; default: built here with
 * gcc). A scratch copy of onnxruntime-node is used: this checkout's node_modules is not touched.
 * Not a test (nothing here runs in `npm test`): a development tool and the evidence for the table in
 * compiler/passes/cuda-kernels.ts.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { compile, traceEntry } from '../../compiler/compile.ts';
import { emitOnnx } from '../../compiler/emit/onnx.ts';
import { fsHost } from '../../compiler/host.ts';
import { lowerForCuda, wrapBf16Io } from '../../compiler/passes/index.ts';
import { installCudaProvider } from '../../runtime/devices/install.ts';
import { goldenConfig } from '../../tests/helpers/parity.ts';
import { v13Config } from '../../tests/helpers/vae-v13-config.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const args = process.argv.slice(2);
const raw = args.includes('--raw');
const only = args.includes('--only') ? args[args.indexOf('--only') + 1]!.split(',') : undefined;
const EXAMPLES = ['stdit', 'stdit2', 'stdit3', 'mmdit', 't5', 'sd_vae', 'vae_temporal', 'hunyuan_vae', 'vae_v13'].filter((e) => !only || only.includes(e));

/** A scratch onnxruntime-node (+ common) with the pinned CUDA provider installed. */
async function scratchOrt(scratch: string): Promise<string> {
  const nm = join(scratch, 'node_modules');
  for (const p of ['onnxruntime-common', 'onnxruntime-node']) cpSync(join(ROOT, 'node_modules', p), join(nm, p), { recursive: true, filter: (s) => !/\/bin\/napi-v6\/(darwin|win32)|\/bin\/napi-v6\/linux\/arm64/.test(s) });
  const binDir = join(nm, 'onnxruntime-node', 'bin', 'napi-v6', 'linux', 'x64');
  const version = JSON.parse(readFileSync(join(nm, 'onnxruntime-node', 'package.json'), 'utf8')).version as string;
  await installCudaProvider({ binDir, ortVersion: version, ...(process.env.SORAC_CUDA_PROVIDER ? { from: process.env.SORAC_CUDA_PROVIDER } : {}), onProgress: (s) => process.stderr.write(`${s}\n`) });
  return binDir;
}

function stubs(scratch: string, binDir: string): string {
  if (process.env.SORAC_STUB_CUDA) return process.env.SORAC_STUB_CUDA;
  const out = join(scratch, 'stub-cuda');
  const r = spawnSync('python3', [join(import.meta.dirname, 'make-stub-cuda.py'), join(binDir, 'libonnxruntime_providers_cuda.so'), out], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('could not build the stand-in CUDA libraries (needs python3, readelf, gcc)');
  return out;
}

const CHILD = `
const ort = require(process.argv[1]);
ort.env.logLevel = 'verbose';
(async () => {
  let res = 'OK';
  try { const s = await ort.InferenceSession.create(process.argv[2], { executionProviders: ['cuda'], logSeverityLevel: 0, graphOptimizationLevel: 'all' }); await s.release(); }
  catch (e) { res = 'ERR ' + String(e.message).split('\\n')[0]; }
  process.stderr.write('\\n@@END ' + res + '\\n');
})();
`;

const FLOAT = new Set([1, 10, 11, 16]);
const ONNX_NAME: Record<number, string> = { 1: 'f32', 10: 'f16', 11: 'f64', 16: 'bf16', 7: 'i64', 6: 'i32', 9: 'bool' };

interface Row {
  name: string;
  created: string;
  cuda: number;
  cpuFloat: Map<string, number>;
  cpuOther: number;
}

async function main(): Promise<void> {
  const scratch = process.env.SORAC_GPU_SCRATCH ?? mkdtempSync(join(tmpdir(), 'sorac-placement-'));
  const binDir = await scratchOrt(scratch);
  const stubDir = stubs(scratch, binDir);
  const models = join(scratch, 'models');
  mkdirSync(models, { recursive: true });
  const files: string[] = [];
  const outType = new Map<string, Map<string, { elem: number; numel: number }>>();
  for (const ex of EXAMPLES) {
    for (const dt of ['f32', 'bf16', 'f16'] as const) {
      for (const opset of [17, 22]) {
        const m = compile({ file: join(ROOT, 'examples', `${ex}.sora`), host: fsHost, config: { values: ex === 'vae_v13' ? v13Config() : goldenConfig(ex) }, ...(dt !== 'f32' ? { dtype: { params: dt, compute: dt } } : {}) });
        if (m.diagnostics.some((d) => d.severity === 'error')) continue;
        for (const e of m.entries) {
          const tr = traceEntry(m, e.name, { opset });
          if (!tr.graph) {
            console.log(`${ex}.${e.name} ${dt} opset ${opset}: does not trace (${tr.diagnostics.find((d) => d.severity === 'error')?.code})`);
            continue;
          }
          // as a session would see it: lowered for CUDA, bf16 graph I/O crossing as f32
          const g = wrapBf16Io(raw ? tr.graph : lowerForCuda(tr.graph).graph).graph;
          // weights become graph inputs: placement needs no weights
          const bytes = emitOnnx(g, { weights: 'none', valueInfo: true });
          const file = join(models, `${ex}.${e.name}.${dt}.${opset}.onnx`);
          writeFileSync(file, bytes);
          files.push(file);
          const mp = onnxProto.onnx.ModelProto.decode(bytes);
          const types = new Map<string, { elem: number; numel: number }>();
          for (const v of [...mp.graph!.input!, ...mp.graph!.valueInfo!, ...mp.graph!.output!]) {
            const tt = v.type!.tensorType!;
            // symbolic dims count as large
            const numel = (tt.shape?.dim ?? []).reduce((a, d) => a * (d.dimValue ? Number(d.dimValue) : 1e6), 1);
            types.set(v.name!, { elem: tt.elemType!, numel });
          }
          const nodes = new Map<string, { elem: number; numel: number }>();
          for (const n of mp.graph!.node!) nodes.set(n.name!, types.get(n.output![0]!) ?? { elem: 0, numel: 0 });
          outType.set(file, nodes);
        }
      }
    }
  }
  const ortPkg = join(binDir, '..', '..', '..', '..');
  // one process per model: after the first session, onnxruntime-node stops printing the verbose placement log
  const rows: Row[] = [];
  for (const file of files) {
    const r = spawnSync(process.execPath, ['-e', CHILD, ortPkg, file], { env: { ...process.env, LD_LIBRARY_PATH: stubDir }, encoding: 'utf8', maxBuffer: 1 << 30 });
    const row: Row = { name: file.slice(models.length + 1, -5), created: 'no answer', cuda: 0, cpuFloat: new Map(), cpuOther: 0 };
    let section: string | undefined;
    for (const line0 of r.stderr.split('\n')) {
      const line = line0.replace(/\x1b\[[0-9;]*m/g, '');
      if (line.startsWith('@@END ')) row.created = line.slice(6);
      const placed = /Node\(s\) placed on \[(\w+)\]\. Number of nodes: (\d+)/.exec(line) ?? /All nodes placed on \[(\w+)\]\. Number of nodes: (\d+)/.exec(line);
      if (placed) {
        section = placed[1];
        if (section === 'CUDAExecutionProvider') row.cuda += Number(placed[2]);
        continue;
      }
      const node = /VerifyEachNodeIsAssignedToAnEp\]\s+(\w+) \(([^)]*)\)/.exec(line);
      if (node && section === 'CPUExecutionProvider') {
        const t = outType.get(file)!.get(node[2]!);
        // float tensors of more than a handful of elements: a real host round trip (scalars from shapes are not)
        if (t && FLOAT.has(t.elem) && t.numel > 16) row.cpuFloat.set(`${node[1]}(${ONNX_NAME[t.elem]})`, (row.cpuFloat.get(`${node[1]}(${ONNX_NAME[t.elem]})`) ?? 0) + 1);
        else row.cpuOther++;
      }
    }
    rows.push(row);
  }
  console.log(`\n${raw ? 'as traced (no CUDA lowering)' : 'as sorac lowers for CUDA'}; onnxruntime ${JSON.parse(readFileSync(join(ortPkg, 'package.json'), 'utf8')).version} CUDA provider against stand-in libraries`);
  console.log(`${'graph'.padEnd(40)} ${'session'.padEnd(10)} ${'on CUDA'.padStart(8)} ${'CPU (shape)'.padStart(12)}  float nodes on CPU`);
  for (const row of rows) {
    const created = row.created === 'OK' || /Unsupported data type/.test(row.created) ? 'created' : 'FAILED';
    console.log(`${row.name.padEnd(40)} ${created.padEnd(10)} ${String(row.cuda).padStart(8)} ${String(row.cpuOther).padStart(12)}  ${[...row.cpuFloat].map(([k, n]) => `${k}x${n}`).join(', ') || '-'}${created === 'FAILED' ? `  ${row.created.slice(0, 160)}` : ''}`);
  }
  const bad = rows.filter((x) => !(x.created === 'OK' || /Unsupported data type/.test(x.created)) || x.cpuFloat.size);
  console.log(`\n${rows.length} graphs: ${rows.length - bad.length} created with every float node on CUDA, ${bad.length} not`);
  process.exitCode = bad.length ? 1 : 0;
}

await main();
