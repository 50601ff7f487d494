/**
 * Start-up and build speed from a cold process (what a user waits for): `sorac --version`, `sorac
 * build --no-onnx` (keymap only) and `sorac build` (keymap + ONNX graph) of the full-size released configs.
 *
 *   npx tsx bench/build.ts [runs=5]
 *
 * Targets: STDiT3-XL/2 keymap well under a second; compare with torch.onnx.export of a *medium*
 * STDiT3 in bench/perf-anchors.json (53 s, and it fails at opset 17).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const runs = Number(process.argv[2] ?? 5);
const root = join(import.meta.dirname, '..');
// make sure the bundle is fresh so we measure the shipped path
execFileSync('node', [join(root, 'scripts', 'bundle.mjs')], { stdio: 'inherit' });

function bench(label: string, args: string[]) {
  const times: number[] = [];
  let rss = 0;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    try {
      execFileSync('node', [join(root, 'bin', 'sorac.js'), ...args], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
      throw new Error(`sorac ${args.join(' ')} failed:\n${(e as { stderr?: string }).stderr}`);
    }
    times.push(performance.now() - t0);
  }
  // peak RSS from one extra run (execFileSync does not return stderr on success)
  try {
    execFileSync('/usr/bin/time', ['-f', 'PEAKRSS %M', '-o', '/tmp/sorac-bench-rss', 'node', join(root, 'bin', 'sorac.js'), ...args], { stdio: 'ignore' });
    rss = Number(/PEAKRSS (\d+)/.exec(readFileSync('/tmp/sorac-bench-rss', 'utf8'))![1]) / 1024;
  } catch {
    rss = NaN;
  }
  times.sort((a, b) => a - b);
  const med = times[Math.floor(times.length / 2)]!;
  console.log(`${label.padEnd(46)} median ${(med / 1000).toFixed(2)} s  (min ${(times[0]! / 1000).toFixed(2)}, max ${(times[times.length - 1]! / 1000).toFixed(2)})  peak RSS ${rss.toFixed(0)} MiB`);
  return med;
}

const out = mkdtempSync(join(tmpdir(), 'sorac-bench-build-'));
console.log(`sorac build from a cold process, ${runs} runs each (node ${process.version})`);
bench('sorac --version (start-up; node -e "" alone below)', ['--version']);
{
  const t: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    execFileSync('node', ['-e', ''], { stdio: 'ignore' });
    t.push(performance.now() - t0);
  }
  t.sort((a, b) => a - b);
  console.log(`${'node -e "" (the floor of any node CLI)'.padEnd(46)} median ${(t[Math.floor(t.length / 2)]! / 1000).toFixed(2)} s`);
}
bench('STDiT3-XL/2 keymap only (--no-onnx)', ['build', 'examples/stdit3.sora', '-o', out, '--no-onnx']);
bench('STDiT3-XL/2 keymap + ONNX graph', ['build', 'examples/stdit3.sora', '-o', out]);
bench('MMDiT (Open-Sora 2.0, 11.9B) keymap + ONNX', ['build', 'examples/mmdit.sora', '-o', out]);
bench('sorac check STDiT3-XL/2 (both optional paths)', ['check', 'examples/stdit3.sora']);
for (const f of readdirSync(out)) console.log(`  ${f}: ${(statSync(join(out, f)).size / 1024).toFixed(0)} KiB`);
const anchors = JSON.parse(readFileSync(join(root, 'bench', 'perf-anchors.json'), 'utf8'));
console.log(`anchor: torch.onnx.export of STDiT3 *medium* (22M params): ${anchors.onnx_export.medium.export_s} s, peak RSS ${anchors.onnx_export.medium.peak_rss_mib} MiB, ${anchors.onnx_export.medium.onnx_nodes} nodes; opset 17 export fails the checker`);
