/**
 * Turn what the user names into a plan: a built-in name, a plan file (`.json`), or a migration
 * script (`.ts`).
 *
 * A script is hostile until proven otherwise (docs/security.md). It runs in two layers:
 *
 * 1. **In this process**, esbuild bundles it into one JavaScript string. Resolution is closed:
 *    `sorac/migrate` (the builder) and source/JSON files inside the script's own directory (real
 *    paths, so a symlink cannot point out of it) are all it may import; anything else — `node:fs`,
 *    packages, `/etc/passwd` — is refused at build time, with a code frame.
 * 2. **In a child process** started with Node's permission model and no grant at all (no file
 *    read or write, no child processes, no workers, no addons, no WASI), an empty environment,
 *    `--max-old-space-size`, and code generation from strings disabled. The bundle arrives on
 *    stdin and runs in a fresh `vm` context that has no `process`, `require`, `import`, console,
 *    ArrayBuffer/typed arrays, WebAssembly or `eval`: plain JavaScript that can only call the
 *    builder. The one thing that leaves is a JSON string on stdout, capped in size; the parent
 *    parses it and validates it as a plan (validatePlan) before anything uses it.
 *
 * The parent kills the child on a wall-time limit, on an output cap, and (Linux) when its resident
 * memory passes a cap. What this is not: Node 20's permission model is experimental and does not
 * cover the network or signals; the vm context is what keeps `net` and `process.kill` out of reach,
 * and a V8 escape from the context would reach them (see docs/security.md, "Boundaries").
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, extname, join, relative, resolve as resolvePath, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SoracError } from '../../core/errors.ts';
import { validatePlan, type Plan } from './plan.ts';

/** sorac's package root (works from the sources and from the dist/ bundle). */
export function soracRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(d, 'package.json');
    if (existsSync(p) && existsSync(join(d, 'runtime', 'migrate', 'builder.ts'))) return d;
    d = dirname(d);
  }
  throw new Error('internal: cannot find the sorac package root');
}

/** The sandbox's limits; each can be raised by the environment variable named in its error. */
export interface ScriptLimits {
  /** Wall time for the whole child (start, evaluation, output), ms. SORAC_SCRIPT_TIMEOUT_S. */
  readonly timeoutMs: number;
  /** V8 heap of the child, MiB (`--max-old-space-size`). SORAC_SCRIPT_MEMORY_MB. */
  readonly memoryMiB: number;
  /** Bytes the child may write (its plan as JSON, or its error). SORAC_SCRIPT_OUTPUT_MB. */
  readonly outputBytes: number;
}

const envNumber = (name: string, dflt: number): number => {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new SoracError('SORA6020', `${name}=${v} is not a positive number`, { hint: `unset ${name} or set it to a positive number` });
  return n;
};

export function scriptLimits(): ScriptLimits {
  return {
    timeoutMs: Math.round(envNumber('SORAC_SCRIPT_TIMEOUT_S', 30) * 1000),
    memoryMiB: Math.round(envNumber('SORAC_SCRIPT_MEMORY_MB', 256)),
    outputBytes: Math.round(envNumber('SORAC_SCRIPT_OUTPUT_MB', 16) * 2 ** 20),
  };
}

/** Node flags of the script child: the permission model with no grant, a heap cap, no eval. */
export function sandboxNodeFlags(memoryMiB: number): string[] {
  // Node 20/21 call it --experimental-permission; from Node 22.13/23.5 it is --permission
  const permission = process.allowedNodeEnvironmentFlags.has('--permission') ? '--permission' : '--experimental-permission';
  return [permission, '--no-warnings', `--max-old-space-size=${memoryMiB}`, '--disallow-code-generation-from-strings', '--no-addons'];
}

const SOURCE_EXT = new Set(['.ts', '.mts', '.cts', '.js', '.mjs', '.cjs', '.json']);
const REFUSED = (spec: string) => `migration scripts may import only "sorac/migrate" and files next to them; refused "${spec}"`;

/** Render esbuild messages as `file:line:col: text` plus a code frame (no esbuild stack). */
function codeFrames(errors: readonly { text: string; location?: { file: string; line: number; column: number; lineText: string; length: number } | null }[], cwd: string, said?: string): string {
  return errors
    .slice(0, 5)
    .map((m) => {
      const l = m.location;
      if (!l) return m.text;
      const abs = resolvePath(cwd, l.file);
      const rel = relative(process.cwd(), abs);
      const file = !rel || rel.startsWith('..') ? abs : rel;
      const num = String(l.line);
      const pad = ' '.repeat(num.length);
      const text = l.lineText.length > 200 ? l.lineText.slice(0, 200) + '…' : l.lineText;
      const caret = ' '.repeat(Math.min(l.column, 200)) + '^'.repeat(Math.max(1, Math.min(l.length, 80)));
      return `${file}:${l.line}:${l.column + 1}${m.text === said ? '' : `: ${m.text}`}\n  ${num} | ${text}\n  ${pad} | ${caret}`;
    })
    .join('\n');
}

const inside = (root: string, p: string) => p === root || p.startsWith(root.endsWith(sep) ? root : root + sep);

/** Bundle the script in this process; only the builder and files in its directory may be imported. */
async function bundleScript(script: string, root: string): Promise<string> {
  const { build } = await import('esbuild');
  const dir = realpathSync(dirname(script));
  const builder = join(root, 'runtime', 'migrate', 'builder.ts');
  const allowed = (p: string) => {
    let real: string;
    try {
      real = realpathSync(p);
    } catch {
      return false;
    }
    return real === realpathSync(builder) || (inside(dir, real) && SOURCE_EXT.has(extname(real).toLowerCase()) && statSync(real).isFile());
  };
  type Msg = { text: string; location?: { file: string; line: number; column: number; lineText: string; length: number } | null };
  try {
    const r = await build({
      entryPoints: [script],
      bundle: true,
      write: false,
      format: 'iife',
      globalName: '__soracScript',
      platform: 'neutral',
      target: 'es2022',
      mainFields: [],
      conditions: [],
      tsconfigRaw: '{}',
      absWorkingDir: dir,
      logLevel: 'silent',
      charset: 'utf8',
      plugins: [
        {
          name: 'sorac-script-guard',
          setup(b) {
            b.onResolve({ filter: /.*/ }, (a) => {
              if (a.kind === 'entry-point') return undefined;
              if (a.path === 'sorac/migrate') return { path: builder };
              if (a.importer === builder) return undefined; // its imports are type-only
              if (!a.path.startsWith('./') && !a.path.startsWith('../')) return { errors: [{ text: REFUSED(a.path) }] };
              return undefined;
            });
            b.onLoad({ filter: /.*/ }, (a) => (allowed(a.path) ? undefined : { errors: [{ text: REFUSED(relative(dir, a.path) || a.path) + ' (outside the script directory, not a source file, or not a regular file)' }] }));
          },
        },
      ],
    });
    return r.outputFiles[0]!.text;
  } catch (e) {
    const errs = (e as { errors?: Msg[] }).errors;
    if (!errs?.length) throw e;
    const refused = errs.find((m) => m.text.startsWith('migration scripts may import only'));
    throw new SoracError('SORA6006', `migration script ${script} ${refused ? 'failed: ' + refused.text : 'does not compile'}:\n${codeFrames(errs, dir, refused?.text)}`, {
      hint: refused ? 'a script may only import "sorac/migrate" and files next to it, and describe ops with the builder; see docs/cli/migrate.md' : 'fix the script (it is TypeScript; see docs/cli/migrate.md for the builder)',
      path: script,
    });
  }
}

// The child's program (CommonJS, given with -e): read {code, name} from stdin, run the bundle in
// a fresh vm context with nothing but the language, write one JSON string to stdout.
const CHILD = String.raw`'use strict';
const vm = require('node:vm');
const chunks = [];
process.stdin.on('data', (d) => chunks.push(d));
process.stdin.on('end', () => {
  const { code, name, timeoutMs, maxOut } = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const strip = "for (const k of ['console','SharedArrayBuffer','Atomics','WebAssembly','ArrayBuffer','DataView','Uint8Array','Int8Array','Uint16Array','Int16Array','Uint32Array','Int32Array','Float32Array','Float64Array','Uint8ClampedArray','BigUint64Array','BigInt64Array','eval','FinalizationRegistry','WeakRef']) delete globalThis[k];\n";
  const wrapped = '(function (S, STR) { try {\n' + code + '\n;let d = typeof __soracScript === "object" && __soracScript !== null ? __soracScript.default : undefined;\n' +
    'if (d && d.__soracMigration !== 1 && d.default) d = d.default;\n' +
    'if (!d || d.__soracMigration !== 1 || typeof d.toPlan !== "function") return S({ error: "the script has no \u0060export default migration(…)\u0060 (import { migration } from \\"sorac/migrate\\")" });\n' +
    'return S({ plan: d.toPlan(' + JSON.stringify(name) + ') });\n' +
    '} catch (e) { try { return S({ error: STR(e !== null && typeof e === "object" && "message" in e ? e.message : e) }); } catch { return S({ error: "the script threw a value that cannot be shown" }); } } })(JSON.stringify, String)';
  let out;
  try {
    const ctx = vm.createContext(Object.create(null), { codeGeneration: { strings: false, wasm: false }, microtaskMode: 'afterEvaluate' });
    vm.runInContext(strip, ctx);
    out = vm.runInContext(wrapped, ctx, { timeout: timeoutMs, filename: 'migration.js' });
  } catch (e) {
    out = JSON.stringify({ error: String(e && e.message), limit: e && e.code === 'ERR_SCRIPT_EXECUTION_TIMEOUT' ? 'time' : undefined });
  }
  if (typeof out !== 'string') out = JSON.stringify({ error: 'the script did not produce a plan' });
  if (out.length > maxOut) out = JSON.stringify({ limit: 'output', error: 'output of ' + out.length + ' characters' });
  process.stdout.write(out, () => process.exit(0));
});`;

/** Resident memory of a process in bytes (Linux; undefined elsewhere or when it is gone). */
function rssOf(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

type Outcome = { ok: true; text: string } | { ok: false; why: 'time' | 'memory' | 'output' | 'crash'; detail: string };

/** Run a bundle in the sandbox child; resolve with what it wrote, or why it was stopped. */
function runChild(code: string, name: string, lim: ScriptLimits): Promise<Outcome> {
  return new Promise((res) => {
    const child = spawn(process.execPath, [...sandboxNodeFlags(lim.memoryMiB), '-e', CHILD], { stdio: ['pipe', 'pipe', 'pipe'], env: {}, cwd: tmpdir(), windowsHide: true });
    let out: Buffer[] = [];
    let outLen = 0;
    let err = '';
    let done = false;
    const finish = (o: Outcome) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearInterval(poll);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      res(o);
    };
    const timer = setTimeout(() => finish({ ok: false, why: 'time', detail: '' }), lim.timeoutMs);
    const rssCap = lim.memoryMiB * 2 ** 20 * 2 + 256 * 2 ** 20;
    const poll = setInterval(() => {
      const r = child.pid !== undefined ? rssOf(child.pid) : undefined;
      if (r !== undefined && r > rssCap) finish({ ok: false, why: 'memory', detail: `resident memory ${Math.round(r / 2 ** 20)} MiB` });
    }, 100);
    child.stdout.on('data', (d: Buffer) => {
      outLen += d.length;
      if (outLen > lim.outputBytes) {
        out = [];
        finish({ ok: false, why: 'output', detail: '' });
      } else out.push(d);
    });
    child.stderr.on('data', (d: Buffer) => {
      if (err.length < 4096) err += d.toString('utf8');
    });
    child.stdin.on('error', () => {}); // the child may die before reading everything
    child.on('error', (e) => finish({ ok: false, why: 'crash', detail: e.message }));
    child.on('close', (codeOrNull, signal) => {
      if (/heap out of memory|Reached heap limit|Allocation failed/i.test(err)) return finish({ ok: false, why: 'memory', detail: '' });
      if (codeOrNull !== 0) return finish({ ok: false, why: 'crash', detail: `exit ${signal ?? codeOrNull}${err ? `: ${err.trim().split('\n').slice(-3).join(' ')}` : ''}` });
      finish({ ok: true, text: Buffer.concat(out).toString('utf8') });
    });
    child.stdin.end(JSON.stringify({ code, name, timeoutMs: lim.timeoutMs, maxOut: lim.outputBytes }));
  });
}

const LIMIT_TEXT = {
  time: (l: ScriptLimits) => [`ran longer than ${l.timeoutMs / 1000} s`, 'SORAC_SCRIPT_TIMEOUT_S'],
  memory: (l: ScriptLimits) => [`used more than its memory limit (${l.memoryMiB} MiB heap)`, 'SORAC_SCRIPT_MEMORY_MB'],
  output: (l: ScriptLimits) => [`produced more than ${l.outputBytes / 2 ** 20} MiB of output`, 'SORAC_SCRIPT_OUTPUT_MB'],
} as const;

/** Evaluate a migration script in the sandbox and return its plan. */
export async function planFromScript(path: string, opts: Partial<ScriptLimits> = {}): Promise<Plan> {
  const script = resolvePath(path);
  if (!existsSync(script) || !statSync(script).isFile()) throw new SoracError('SORA6006', `migration script ${path} not found`, { path: script });
  const lim = { ...scriptLimits(), ...opts };
  const code = await bundleScript(script, soracRoot());
  const o = await runChild(code, basename(script, extname(script)), lim);
  const stopped = (why: 'time' | 'memory' | 'output', detail = '') => {
    const [what, env] = LIMIT_TEXT[why](lim);
    return new SoracError('SORA6020', `migration script ${path} was stopped: it ${what}${detail ? ` (${detail})` : ''}; nothing it did was kept`, {
      hint: `a script only describes ops and needs little time or memory; if this one legitimately needs more, raise the limit with ${env} (docs/security.md#limits)`,
      path: script,
    });
  };
  if (!o.ok) {
    if (o.why === 'crash') throw new SoracError('SORA6006', `migration script ${path} did not produce a plan: the sandbox process ended (${o.detail})`, { path: script });
    throw stopped(o.why, o.detail);
  }
  let msg: { plan?: unknown; error?: unknown; limit?: string };
  try {
    msg = JSON.parse(o.text) as typeof msg;
  } catch {
    throw new SoracError('SORA6006', `migration script ${path} did not produce a plan`, { path: script });
  }
  if (msg.limit === 'time' || msg.limit === 'output') throw stopped(msg.limit);
  if (msg.error !== undefined) throw new SoracError('SORA6006', `migration script ${path} failed: ${String(msg.error)}`, { hint: 'a script may only import "sorac/migrate" and describe ops with the builder; see docs/cli/migrate.md', path: script });
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
