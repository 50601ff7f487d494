/**
 * Where `sorac build` of STDiT3-XL/2 spends its CPU, phase by phase, through the bundled API in a
 * fresh process each run: compile (parser construction, parse, elaboration, keymap), the same again
 * with the parser built, trace, ONNX emission and the keymap's canonical JSON. CPU time
 * (process.cpuUsage: all threads, so GC and compiler threads count) is the comparable number on a
 * shared machine.
 *
 *   npx tsx bench/build-phases.ts [runs=5] [dist=dist]      (node scripts/bundle.mjs first)
 *
 * Pass another bundle directory (e.g. one built from an older commit with scripts/bundle.mjs's
 * bundle(dir), placed beside std/) to compare.
 */
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';

const runs = Number(process.argv[2] ?? 5);
const root = join(import.meta.dirname, '..');
const dist = resolve(root, process.argv[3] ?? 'dist');
const child = `
const cpu = () => { const c = process.cpuUsage(); return (c.user + c.system) / 1000; };
let t = cpu();
const api = await import(${JSON.stringify(join(dist, 'index.mjs'))});
const T = {};
const lap = (k) => { const n = cpu(); T[k] = n - t; t = n; };
lap('import index.mjs');
const opts = { file: 'examples/stdit3.sora', host: api.fsHost, cwd: ${JSON.stringify(root)} };
const m = api.compile(opts);
lap('compile');
api.compile(opts);
lap('compile again');
const r = api.traceEntry(m, 'forward', { opset: 17 });
lap('trace');
api.emitOnnx(r.graph, { weights: 'none' });
lap('emitOnnx');
api.canonicalJson(m.keymap);
lap('keymap JSON');
console.log(JSON.stringify(T));
`;
const all: Record<string, number>[] = [];
for (let i = 0; i < runs; i++) all.push(JSON.parse(execFileSync('node', ['--input-type=module', '-e', child], { cwd: root, encoding: 'utf8' })));
console.log(`sorac build phases (STDiT3-XL/2, ${dist}), CPU ms, median of ${runs} fresh processes (node ${process.version})`);
for (const k of Object.keys(all[0]!)) {
  const xs = all.map((x) => x[k]!).sort((a, b) => a - b);
  console.log(`  ${k.padEnd(18)} ${xs[Math.floor(xs.length / 2)]!.toFixed(1).padStart(8)}   (min ${xs[0]!.toFixed(1)}, max ${xs[xs.length - 1]!.toFixed(1)})`);
}
