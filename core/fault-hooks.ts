/**
 * Test-only fault injection for the long writers (`ckpt export`, `ckpt manifest`, `build`: files
 * staged), driven by
 * environment variables so a test can drive a real child process:
 *
 *  - `SORAC_TEST_PAUSE_AFTER=N` + `SORAC_TEST_PAUSE_FILE=/path`: after N units (tensors for export,
 *    bytes-written milestones for the manifest) create /path and hang forever — the test waits for
 *    the file, then SIGKILLs the process mid-write (with `SORAC_TEST_PAUSE_MS=T` it resumes after T ms
 *    instead, so a test can deliver SIGINT mid-write);
 *  - `SORAC_TEST_FAIL_AFTER=N:CODE` (e.g. `3:ENOSPC`): after N units throw a file-system error with
 *    that errno code from inside the write path, as a full disk would (ENOSPC cannot be produced
 *    without a small file system, which needs root to mount).
 *
 * Unset in normal use: `faultPoint` is then a no-op.
 */
import { writeFileSync } from 'node:fs';

export async function faultPoint(unitsDone: number, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const pause = env.SORAC_TEST_PAUSE_AFTER;
  if (pause !== undefined && unitsDone === Number(pause)) {
    if (env.SORAC_TEST_PAUSE_FILE) writeFileSync(env.SORAC_TEST_PAUSE_FILE, String(process.pid));
    const ms = env.SORAC_TEST_PAUSE_MS;
    if (ms !== undefined) {
      await new Promise<void>((r) => setTimeout(r, Number(ms)));
    } else {
      await new Promise<void>(() => {
        setInterval(() => {}, 1 << 30);
      });
    }
  }
  const fail = env.SORAC_TEST_FAIL_AFTER;
  if (fail !== undefined) {
    const [n, code = 'ENOSPC'] = fail.split(':');
    if (unitsDone === Number(n)) {
      const e = new Error(`${code}: injected by SORAC_TEST_FAIL_AFTER, write`) as NodeJS.ErrnoException;
      e.code = code;
      throw e;
    }
  }
}
