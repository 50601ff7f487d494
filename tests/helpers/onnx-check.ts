/**
 * Runs the reference ONNX checker (Debian python3-onnx 1.12 at /usr/bin/python3) on a model.
 *
 * This never skips: if /usr/bin/python3 cannot `import onnx`, the check FAILS with an error that
 * says how to install it (CI installs python3-onnx in .ci/run).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile, copyFile, link } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const CHECKER_PYTHON = process.env.SORAC_ONNX_PYTHON ?? '/usr/bin/python3';

const SCRIPT = [
  'import sys, onnx',
  'onnx.checker.check_model(sys.argv[1], full_check=True)',
  'm = onnx.load(sys.argv[1])',
  'print("ok", m.ir_version, m.opset_import[0].version)',
].join('\n');

export interface CheckResult {
  readonly ok: boolean;
  /** checker output (stderr/stdout), trimmed */
  readonly message: string;
}

/**
 * Check ONNX bytes. `files` are extra files (e.g. external data) placed next to the model:
 * name -> bytes, or name -> { path } to hardlink/copy an existing file.
 */
export async function checkOnnx(model: Uint8Array, files: Record<string, Uint8Array | { path: string }> = {}): Promise<CheckResult> {
  const dir = await mkdtemp(join(tmpdir(), 'sorac-onnx-check-'));
  try {
    const path = join(dir, 'model.onnx');
    await writeFile(path, model);
    for (const [name, f] of Object.entries(files)) {
      const dst = join(dir, name);
      if (f instanceof Uint8Array) await writeFile(dst, f);
      else await link(f.path, dst).catch(() => copyFile(f.path, dst));
    }
    return await checkOnnxFile(path);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Check a model file on disk (external data resolved relative to its directory). */
export async function checkOnnxFile(path: string): Promise<CheckResult> {
  await assertCheckerAvailable();
  try {
    const { stdout } = await run(CHECKER_PYTHON, ['-c', SCRIPT, path], { timeout: 60_000 });
    return { ok: true, message: stdout.trim() };
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string; message: string };
    const text = (err.stderr || err.stdout || err.message).trim();
    // keep the exception line, not the Python traceback frames
    const lines = text.split('\n');
    return { ok: false, message: `${basename(path)}: ${lines[lines.length - 1]}` };
  }
}

let available: Promise<void> | undefined;

export function assertCheckerAvailable(): Promise<void> {
  available ??= probeChecker(CHECKER_PYTHON);
  return available;
}

/** Resolves when `python` can import onnx; otherwise rejects with how to install it. */
export function probeChecker(python: string): Promise<void> {
  return run(python, ['-c', 'import onnx; print(onnx.__version__)'], { timeout: 60_000 }).then(
    () => undefined,
    (e: Error) => {
      throw new Error(
        `ONNX checker unavailable: ${python} cannot import onnx (${e.message.split('\n').slice(-2).join(' ').trim()}).\n` +
          `Install it with: apt-get install -y python3-onnx  (Debian onnx 1.12; set SORAC_ONNX_PYTHON to use another interpreter)`,
      );
    },
  );
}
