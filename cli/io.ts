/** Terminal I/O for the CLI. Commands write through a CliIO so tests can capture output. */
import { SoracError } from '../core/errors.ts';

export interface CliIO {
  stdout(s: string): void;
  stderr(s: string): void;
  /** true when stdout is an interactive terminal (colours, progress bars, code frames). */
  readonly isTTY: boolean;
  readonly color: boolean;
  readonly cwd: string;
}

let pipeHandled = false;

export function defaultIO(): CliIO {
  const isTTY = !!process.stdout.isTTY;
  if (!pipeHandled) {
    // `sorac ... | head`: a closed pipe is not an error worth a stack trace
    pipeHandled = true;
    process.stdout.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(0);
      throw e;
    });
  }
  return {
    stdout: (s) => void process.stdout.write(s),
    stderr: (s) => void process.stderr.write(s),
    isTTY,
    color: isTTY && !process.env.NO_COLOR && process.env.TERM !== 'dumb',
    cwd: process.cwd(),
  };
}

/** A captured IO for tests. */
export function memoryIO(opts: { isTTY?: boolean; cwd?: string } = {}): CliIO & { out: string; err: string } {
  const io = {
    out: '',
    err: '',
    stdout(s: string) {
      io.out += s;
    },
    stderr(s: string) {
      io.err += s;
    },
    isTTY: opts.isTTY ?? false,
    color: false,
    cwd: opts.cwd ?? process.cwd(),
  };
  return io;
}

export const EXIT = { OK: 0, USER: 1, USAGE: 2, INTERNAL: 70 } as const;

/** A command line that cannot be run as given (an option value out of range, options that need each other): exit 2. */
export function usageError(message: string, hint?: string): SoracError {
  return new SoracError('SORA7007', message, hint !== undefined ? { hint } : {});
}
