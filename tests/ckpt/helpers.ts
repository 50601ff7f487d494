/** Shared helpers for the `sorac ckpt` tests: fixture copies, in-process CLI runs, child processes. */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memoryIO } from '../../cli/io.ts';
import { main } from '../../cli/main.ts';

export const ROOT = join(import.meta.dirname, '../..');
export const EXP = join(ROOT, 'tests/fixtures/training/outputs/000-STDiT3-XL-2');
export const TINY_CONFIG = join(ROOT, 'tests/fixtures/training/stdit3-tiny.json');
export const STDIT3 = join(ROOT, 'examples/stdit3.sora');
export const V12 = 'epoch0-global_step2';
export const SYNC20 = 'epoch0-global_step4';
export const ASYNC20 = 'epoch1-global_step6';

export function tempRoot(tag: string): string {
  return mkdtempSync(join(tmpdir(), `sorac-ckpt-${tag}-`));
}

/** A fresh writable copy of the fixture experiment dir. */
export function copyExp(root: string, name = 'exp'): string {
  const d = join(root, name);
  rmSync(d, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  cpSync(EXP, d, { recursive: true });
  return d;
}

export async function run(args: string[], opts: { isTTY?: boolean; cwd?: string } = {}) {
  const io = memoryIO({ cwd: opts.cwd ?? ROOT, isTTY: opts.isTTY });
  const code = await main(args, io);
  return { code, out: io.out, err: io.err };
}

/** Run the CLI in a child process (real signals, real env hooks). */
export function spawnCli(args: string[], env: Record<string, string> = {}, opts: { uid?: number; gid?: number } = {}) {
  return spawn(process.execPath, [join(ROOT, 'bin/sorac.js'), ...args], {
    cwd: ROOT,
    env: { ...process.env, SORAC_FROM_SOURCE: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...opts,
  });
}

export async function waitFor(path: string, ms = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!existsSync(path)) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${path}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Mount a small tmpfs (root only, where the kernel lets us); undefined when not possible. */
export function mountTmpfs(dir: string, size = '1m'): boolean {
  if (process.getuid?.() !== 0) return false;
  mkdirSync(dir, { recursive: true });
  return spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' }).status === 0;
}

export function remountReadOnly(dir: string): boolean {
  return spawnSync('mount', ['-o', 'remount,ro', dir], { stdio: 'ignore' }).status === 0;
}

export function umount(dir: string): void {
  spawnSync('umount', [dir], { stdio: 'ignore' });
}
