import { readFileSync } from 'node:fs';
import type { Host } from './program.ts';

/** A Host reading from the real file system (used by the CLI, tests and the API). */
export const fsHost: Host = {
  readFile(p: string): string | undefined {
    try {
      const buf = readFileSync(p);
      return new TextDecoder('utf-8', { fatal: true }).decode(buf);
    } catch {
      return undefined;
    }
  },
};
