import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { type Host, STD_DIR } from './program.ts';

/**
 * Largest source file read whole. The parser refuses more than 2 Mi characters itself (SORA1004,
 * with the limit in the message); this only bounds memory for a file far past that.
 */
const MAX_SOURCE_BYTES = 64 * 1024 * 1024;

const real = (p: string): string => {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
};

/** The project a model file belongs to: the nearest folder above it with .git or package.json, else its own folder. */
export function projectDir(file: string): string {
  const start = dirname(resolve(file));
  for (let d = start; ; ) {
    if (existsSync(join(d, '.git')) || existsSync(join(d, 'package.json'))) return d;
    const up = dirname(d);
    if (up === d) return start;
    d = up;
  }
}

/** A Host reading from the real file system (used by the CLI, tests and the API). */
export const fsHost: Host = {
  readFile(p: string): string | undefined {
    try {
      // only regular files of source size: a device (/dev/zero) or FIFO is never read
      const st = statSync(p);
      if (!st.isFile() || st.size > MAX_SOURCE_BYTES) return undefined;
      const buf = readFileSync(p);
      return new TextDecoder('utf-8', { fatal: true }).decode(buf);
    } catch {
      return undefined;
    }
  },
  importRoots(rootFile: string): readonly string[] {
    const extra = (process.env.SORAC_PATH ?? '').split(delimiter).filter(Boolean);
    // sorac's own files (std/ and the bundled examples/) are as trusted as the compiler itself
    return [projectDir(rootFile), STD_DIR, join(dirname(STD_DIR), 'examples'), ...extra].map(real);
  },
  realpath(file: string): string | undefined {
    try {
      return realpathSync(file);
    } catch {
      return undefined;
    }
  },
};
