/**
 * `sorac doctor [--json] [--no-smoke] [--no-hash]`: would CUDA work on this machine? Node and
 * onnxruntime versions, the CUDA provider files against their pin, every CUDA/cuBLAS/cuDNN library
 * the provider needs resolved as the dynamic loader would (and where else it was found), the GPU,
 * and a real CUDA session in a child process. Each failure comes with the exact fix.
 * Exit 0 only when CUDA works for a process started now with this environment.
 */
import type { DoctorCheck, DoctorReport } from '../../api/devices.ts';
import type { RegisterCommand } from '../command.ts';
import type { CliIO } from '../io.ts';
import { EXIT, usageError } from '../io.ts';

const MARK: Record<DoctorCheck['status'], string> = { ok: 'ok  ', fail: 'FAIL', warn: 'warn', skip: 'skip' };

/** The doctor's report as text: one line per check (details indented), then the fixes in order. */
export function renderDoctor(r: DoctorReport, io: Pick<CliIO, 'color'>): string {
  const red = (s: string) => (io.color ? `\x1b[31m${s}\x1b[39m` : s);
  const green = (s: string) => (io.color ? `\x1b[32m${s}\x1b[39m` : s);
  const yellow = (s: string) => (io.color ? `\x1b[33m${s}\x1b[39m` : s);
  const paint = (c: DoctorCheck) => (c.status === 'fail' ? red : c.status === 'ok' ? green : c.status === 'warn' ? yellow : (s: string) => s)(MARK[c.status]);
  const width = Math.max(...r.checks.map((c) => c.title.length));
  const lines: string[] = [];
  for (const c of r.checks) {
    const [first, ...rest] = c.detail.split('\n');
    lines.push(`${paint(c)}  ${c.title.padEnd(width)}  ${first}`);
    for (const l of rest) lines.push(`${' '.repeat(width + 8)}${l}`);
    if (c.fix && c.status !== 'ok') lines.push(`${' '.repeat(width + 8)}fix: ${c.fix}`);
  }
  lines.push('');
  if (r.ok) lines.push(green('CUDA works here: sorac run/generate use it with --device auto (the default) or --device cuda.'));
  else {
    lines.push(red(`CUDA would not work here${r.fixes.length ? `; fixes, in order:` : '.'}`));
    r.fixes.forEach((f, i) => lines.push(`  ${i + 1}. ${f}`));
    lines.push('Until then sorac runs on the CPU (--device auto falls back with one line; --device cuda fails).');
  }
  return lines.join('\n') + '\n';
}

export const registerDoctor: RegisterCommand = (program, io, setExit) => {
  program
    .command('doctor')
    .description('check whether CUDA would work here (onnxruntime, CUDA provider, CUDA/cuBLAS/cuDNN libraries, GPU) and print the exact fixes; exit 0 only when it does')
    .option('--json', 'one JSON document with every check')
    .option('--no-smoke', 'do not create a real CUDA session in a child process')
    .option('--no-hash', 'check the provider files by size only (skips hashing 230 MB)')
    .option('--device-id <n>', 'GPU index for the test session', '0')
    .action(async (o: { json?: boolean; smoke: boolean; hash: boolean; deviceId: string }) => {
      const deviceId = Number(o.deviceId);
      if (!/^\d+$/.test(o.deviceId) || !Number.isSafeInteger(deviceId)) throw usageError(`--device-id ${o.deviceId} is not a GPU index (0, 1, ...)`);
      // loaded when the command runs, so other commands do not load it (a separate chunk of the bundle)
      const { doctor } = await import('../../api/devices.ts');
      const r = await doctor({ smoke: o.smoke, hash: o.hash, deviceId });
      if (o.json) io.stdout(JSON.stringify(r, null, 2) + '\n');
      else io.stdout(renderDoctor(r, io));
      setExit(r.ok ? EXIT.OK : EXIT.USER);
    });
};
