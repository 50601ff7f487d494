/**
 * Turn what the user names into a plan: a built-in name, a plan file (`.json`), or a migration
 * script (`.ts`, evaluated with tsx's `tsImport`).
 *
 * Scripts run in a child process under Node's permission model (read access to sorac and the
 * script's directory only; no writes, no child processes, no native addons) with a resolve hook
 * that lets user code import only `sorac/migrate` and files next to it, and without `fetch`. What
 * comes back over IPC is validated as a plan (validatePlan) before anything uses it. This keeps an
 * honest script to data; it is defence in depth, not a boundary against hostile code (the loader
 * needs worker threads, which the permission model cannot confine): review scripts like code.
 */
import { fork } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SoracError } from '../../core/errors.ts';
import { validatePlan, type Plan } from './plan.ts';

/** sorac's package root (works from the sources and from the dist/ bundle). */
export function soracRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(d, 'package.json');
    if (existsSync(p) && existsSync(join(d, 'runtime', 'migrate', 'script-runner.mjs'))) return d;
    d = dirname(d);
  }
  throw new Error('internal: cannot find the sorac package root');
}

/** Evaluate a migration script in the sandbox and return its plan. */
export async function planFromScript(path: string, opts: { timeoutMs?: number } = {}): Promise<Plan> {
  const script = resolvePath(path);
  if (!existsSync(script)) throw new SoracError('SORA6006', `migration script ${path} not found`);
  const root = soracRoot();
  const upper = (p: string) => p.toUpperCase(); // tsx probes the upper-cased path to detect case sensitivity
  // `dir/*` grants the tree (Node 20 aborts on overlapping grants, so nested dirs are listed once)
  const dirs = [root, dirname(script)].filter((d, i, a) => !a.some((o, j) => j !== i && (d === o ? j < i : d.startsWith(o + '/'))));
  const reads = dirs.flatMap((p) => [`${p}/*`, upper(p)]);
  const args = ['--no-warnings', '--experimental-permission', ...reads.map((p) => `--allow-fs-read=${p}`), '--allow-worker', '--allow-child-process'];
  const child = fork(join(root, 'runtime', 'migrate', 'script-runner.mjs'), [script, root], {
    execArgv: args,
    env: { ...process.env, TSX_DISABLE_CACHE: '1', NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout?.on('data', (d: Buffer) => (stderr += d.toString()));
  const timeout = opts.timeoutMs ?? 60_000;
  const msg = await new Promise<{ plan?: unknown; error?: string } | undefined>((res) => {
    let got: { plan?: unknown; error?: string } | undefined;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      res({ error: `timed out after ${timeout / 1000} s` });
    }, timeout);
    child.on('message', (m) => (got = m as typeof got));
    child.on('exit', () => {
      clearTimeout(timer);
      res(got);
    });
  });
  if (!msg) throw new SoracError('SORA6006', `migration script ${path} did not produce a plan${stderr ? `:\n${stderr.trim()}` : ''}`);
  if (msg.error) throw new SoracError('SORA6006', `migration script ${path} failed: ${msg.error}`, { hint: 'a script may only import "sorac/migrate" and describe ops with the builder; see docs/cli/migrate.md' });
  return validatePlan(msg.plan, path);
}

/** Read and validate a plan file (JSON). */
export function planFromJson(path: string): Plan {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new SoracError('SORA6001', `cannot read plan ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new SoracError('SORA6001', `${path} is not valid JSON: ${(e as Error).message}`);
  }
  return validatePlan(v, path);
}
