/**
 * `sorac verify PATH [--json]`: hash every file of a checkpoint (streaming sha256), check hub-cache
 * blobs against the hash in their name, and check structure (truncated safetensors / zip, missing
 * shards, `.incomplete` downloads). Exit 1 when any file is bad. A progress bar is drawn on stderr
 * only when stdout is a TTY.
 */
import { formatBytes, verifyWeights } from '../../api/weights.ts';
import type { RegisterCommand } from '../command.ts';
import { usageError } from '../io.ts';
import { progressBar } from '../progress.ts';

interface VerifyOpts {
  json?: boolean;
  expect?: string;
  sums?: string;
  cacheDir?: string;
  revision?: string;
  part?: string;
}

export const registerVerify: RegisterCommand = (program, io, setExit) => {
  program
    .command('verify')
    .description('hash every file of a checkpoint (sha256), check hub blobs against their names and file structure; exit 1 if any is bad')
    .argument('<path>', 'file, directory, training dir, or hub id org/name[@rev][/file] (local hub cache)')
    .option('--json', 'machine-readable output')
    .option('--cache-dir <dir>', 'hub cache to search first')
    .option('--revision <rev>', 'hub revision when the id has no @rev')
    .option('--expect <sha256>', 'the sha256 the file must hash to (e.g. from the model card); a different one is hash-mismatch')
    .option('--sums <file>', 'check against a SHA256SUMS file (sha256sum format; names relative to its folder)')
    .action(async (path: string, o: VerifyOpts) => {
      const bar = io.isTTY && !o.json ? progressBar(io) : undefined;
      try {
        if (o.expect !== undefined && o.sums !== undefined) throw usageError('--expect and --sums exclude each other', '--expect checks one file, --sums every file listed');
        const r = await verifyWeights(path, { cwd: io.cwd, cacheDir: o.cacheDir, revision: o.revision, onProgress: bar ? (p) => bar.update(p) : undefined, ...(o.expect !== undefined ? { expect: o.expect } : {}), ...(o.sums !== undefined ? { sums: o.sums } : {}) });
        bar?.done();
        const bad = r.files.filter((f) => f.status !== 'ok');
        if (o.json) {
          io.stdout(JSON.stringify({ ok: r.ok, target: r.target, bytes: r.bytes, seconds: r.seconds, files: r.files, ...(r.checked ? { checked: r.checked } : {}) }, null, 2) + '\n');
        } else {
          for (const f of r.files) {
            io.stdout(`${f.status.padEnd(13)} ${(f.sha256 ?? '-').padEnd(64)}  ${formatBytes(f.size).padStart(8)}  ${f.path}\n`);
            if (f.detail) io.stdout(`${''.padEnd(13)} ${f.detail}\n`);
          }
          const rate = r.bytes / Math.max(1e-6, r.seconds);
          io.stdout(`\n${r.files.length} file(s), ${formatBytes(r.bytes)} in ${r.seconds.toFixed(2)} s (${formatBytes(rate)}/s): ${r.ok ? 'all ok' : `${bad.length} bad`}\n`);
          const hub = r.files.filter((f) => f.expected).length;
          if (hub) io.stdout(`${hub} hub-cache blob(s) checked against the hash in their name\n`);
          const c = r.checked;
          if (c)
            io.stdout(
              c.against === '--expect'
                ? `${c.matched ? 'matches' : 'does NOT match'} the sha256 given with --expect\n`
                : `checked against ${c.against}: ${c.matched} matched, ${c.mismatched} mismatched, ${c.missing} listed but missing, ${c.unlisted} not listed\n`,
            );
        }
        setExit(r.ok ? 0 : 1);
      } finally {
        bar?.done();
      }
    });
};
