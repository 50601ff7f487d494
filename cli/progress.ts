/** A one-line progress bar for long streaming operations (verify, manifests, exports, migrations). */
import type { VerifyProgress } from '../api/weights.ts';
import { formatBytes } from '../api/weights.ts';
import type { CliIO } from './io.ts';

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
    /** Clear the bar's line (idempotent). */
    done() {
      if (drawn) io.stderr('\r\u001b[K');
      drawn = false;
    },
  };
}

/** A step counter with ETA for loops (the sampler's steps): `[####....] 12/30 steps  2.1 s/step  ETA 38 s`. */
export function stepBar(io: CliIO, label: string, width = 30) {
  let drawn = false;
  let last = 0;
  return {
    update(done: number, total: number, ms: number) {
      const now = performance.now();
      if (now - last < 100 && done < total) return;
      last = now;
      const fill = Math.round((done / Math.max(1, total)) * width);
      const per = done ? ms / done : 0;
      const eta = per * (total - done);
      const fmt = (t: number) => (t >= 60_000 ? `${Math.floor(t / 60_000)} min ${Math.round((t % 60_000) / 1000)} s` : t >= 1000 ? `${(t / 1000).toFixed(1)} s` : `${Math.round(t)} ms`);
      io.stderr(`\r${label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${done}/${total} steps  ${fmt(per)}/step  ETA ${done ? fmt(eta) : '…'}\u001b[K`);
      drawn = true;
    },
    done() {
      if (drawn) io.stderr('\r\u001b[K');
      drawn = false;
    },
  };
}
