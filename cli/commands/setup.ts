/**
 * `sorac setup cuda [--from npm|nuget|FILE|DIR] [--cache-dir D] [--copy] [--no-verify] [--json]`:
 * install onnxruntime's CUDA provider (the build pinned for the installed onnxruntime-node) next to
 * onnxruntime-node's binding, verified file by file (size + sha256), atomically and idempotently,
 * then run the doctor's checks as the final verification. Plain `npm ci` never does this: sorac
 * stays CPU-only and offline-safe until a user asks for CUDA.
 */
import { formatBytes } from '../../api/weights.ts';
import type { RegisterCommand } from '../command.ts';
import { EXIT, usageError } from '../io.ts';
import { renderDoctor } from './doctor.ts';

interface SetupOpts {
  from?: string;
  cacheDir?: string;
  copy?: boolean;
  verify: boolean;
  smoke: boolean;
  json?: boolean;
}

export const registerSetup: RegisterCommand = (program, io, setExit) => {
  program
    .command('setup')
    .description('install optional runtime components: `sorac setup cuda` installs the CUDA execution provider')
    .argument('<component>', 'cuda')
    .option('--from <source>', 'npm (default: npm pack of the pinned package), nuget, or a local .tgz, .nupkg or folder')
    .option('--cache-dir <dir>', 'where verified provider files are kept (default $SORAC_CACHE_DIR or ~/.cache/sorac)')
    .option('--copy', 'copy the files into onnxruntime-node instead of symlinking them from the cache')
    .option('--no-verify', 'skip the doctor checks after installing')
    .option('--no-smoke', 'verify without creating a real CUDA session')
    .option('--json', 'one JSON document: what was installed and the doctor report')
    .action(async (component: string, o: SetupOpts) => {
      // loaded when the command runs, so other commands do not load it (a separate chunk of the bundle)
      const { setupCuda } = await import('../../api/devices.ts');
      if (component !== 'cuda') throw usageError(`sorac setup ${component}: unknown component`, 'the only component is cuda: sorac setup cuda');
      const progress = o.json ? undefined : (s: string) => io.stderr(`${s}\n`);
      const r = await setupCuda({ ...(o.from ? { from: o.from } : {}), ...(o.cacheDir ? { cacheDir: o.cacheDir } : {}), copy: !!o.copy, verify: o.verify, smoke: o.smoke, cwd: io.cwd, ...(progress ? { onProgress: progress } : {}) });
      if (o.json) {
        io.stdout(JSON.stringify({ ok: true, install: r.install, ...(r.doctor ? { doctor: r.doctor, cudaWorks: r.doctor.ok } : {}) }, null, 2) + '\n');
      } else {
        const i = r.install;
        io.stdout(`onnxruntime ${i.ortVersion} CUDA provider (from ${i.source}), cache ${i.cacheDir}\n`);
        for (const f of i.files) io.stdout(`  ${f.changed ? (f.mode === 'symlink' ? 'linked' : 'copied') : 'in place'}  ${f.path}  ${formatBytes(f.size)}  sha256 ${f.sha256}\n`);
        for (const p of i.replaced) io.stdout(`  replaced a provider of another build at ${p}\n`);
        io.stdout(i.changed ? 'installed.\n' : 'already installed: nothing changed.\n');
        if (r.doctor) io.stdout(`\nverification (sorac doctor):\n${renderDoctor(r.doctor, io)}`);
      }
      setExit(EXIT.OK);
    });
};
