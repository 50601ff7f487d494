/** Run the built CLI (bin/sorac.js: the bundle when fresh, else the sources) in a child process, as a user would. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

export const ROOT = join(import.meta.dirname, '../..');

export interface CliRun {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

export function soracBin(args: readonly string[], opts: { cwd?: string; env?: Record<string, string>; input?: string } = {}): CliRun {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/sorac.js'), ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, NO_COLOR: '1', ...(opts.env ?? {}) },
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    ...(opts.input !== undefined ? { input: opts.input } : {}),
  });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/** No Node stack frame in a user-facing message. */
export const STACK_FRAME = /\n\s+at .*\.(ts|js|mjs):\d+/;
