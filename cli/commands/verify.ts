/**
 * `sorac verify PATH [--json]`: hash every file of a checkpoint (streaming sha256), check hub-cache
 * blobs against the hash in their name, and check structure (truncated safetensors / zip, missing
 * shards, `.incomplete` downloads). Exit 1 when any file is bad. A progress bar is drawn on stderr
 * only when stdout is a TTY.
 */
import { formatBytes } from '../../runtime/weights/key-tree.ts';
import { verifyWeights, type VerifyProgress } from '../../runtime/weights/verify.ts';
import { WeightsError } from '../../runtime/weights/weights-error.ts';
import type { CliIO } from '../io.ts';
import type { RegisterCommand } from './index.ts';
import { renderWeightsError } from './inspect.ts';

interface VerifyOpts {
  json?: boolean;
  cacheDir?: string;
  revision?: string;
  part?: string;
}

/** A one-line progress bar written with carriage returns (no dependency; throttled to ~10 Hz). */
export function progressBar(io: CliIO, width = 30) {
  let last = 0;
  const t0 = performance.now();
  let drawn = false;
  return {
    update(p: VerifyProgress) {
      const now = performance.now();
      if (now - last < 100 && p.doneBytes < p.totalBytes) return;
      last = now;
      const frac = p.totalBytes ? p.doneBytes / p.totalBytes : 1;
      const fill = Math.round(frac * width);
      const rate = p.doneBytes / Math.max(1e-3, (now - t0) / 1000);
      const name = p.file.length > 40 ? '…' + p.file.slice(-39) : p.file;
      io.stderr(`\r[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${(frac * 100).toFixed(0).padStart(3)}% ${formatBytes(p.doneBytes)}/${formatBytes(p.totalBytes)} ${formatBytes(rate)}/s ${p.fileIndex + 1}/${p.fileCount} ${name}\u001b[K`);
      drawn = true;
    },
    done() {
      if (drawn) io.stderr('\r\u001b[K');
    },
  };
}

export const registerVerify: RegisterCommand = (program, io, setExit) => {
  program
    .command('verify')
    .description('hash every file of a checkpoint (sha256), check hub blobs against their names and file structure; exit 1 if any is bad')
    .argument('<path>', 'file, directory, training dir, or hub id org/name[@rev][/file] (local hub cache)')
    .option('--json', 'machine-readable output')
    .option('--cache-dir <dir>', 'hub cache to search first')
    .option('--revision <rev>', 'hub revision when the id has no @rev')
    .action(async (path: string, o: VerifyOpts) => {
      const bar = io.isTTY && !o.json ? progressBar(io) : undefined;
      try {
        const r = await verifyWeights(path, { cwd: io.cwd, cacheDir: o.cacheDir, revision: o.revision, onProgress: bar ? (p) => bar.update(p) : undefined });
        bar?.done();
        const bad = r.files.filter((f) => f.status !== 'ok');
        if (o.json) {
          io.stdout(JSON.stringify({ ok: r.ok, target: r.target, bytes: r.bytes, seconds: r.seconds, files: r.files }, null, 2) + '\n');
        } else {
          for (const f of r.files) {
            io.stdout(`${f.status.padEnd(13)} ${(f.sha256 ?? '-').padEnd(64)}  ${formatBytes(f.size).padStart(8)}  ${f.path}\n`);
            if (f.detail) io.stdout(`${''.padEnd(13)} ${f.detail}\n`);
          }
          const rate = r.bytes / Math.max(1e-6, r.seconds);
          io.stdout(`\n${r.files.length} file(s), ${formatBytes(r.bytes)} in ${r.seconds.toFixed(2)} s (${formatBytes(rate)}/s): ${r.ok ? 'all ok' : `${bad.length} bad`}\n`);
          const hub = r.files.filter((f) => f.expected).length;
          if (hub) io.stdout(`${hub} hub-cache blob(s) checked against the hash in their name\n`);
        }
        setExit(r.ok ? 0 : 1);
      } catch (e) {
        bar?.done();
        if (!(e instanceof WeightsError)) throw e;
        if (o.json) io.stdout(JSON.stringify({ ok: false, error: e.toJSON() }, null, 2) + '\n');
        else io.stderr(renderWeightsError(e));
        setExit(1);
      }
    });
};
