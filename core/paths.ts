/**
 * The one rule for outputs (docs/security.md#outputs): an output may never be, contain, or lie
 * inside an input — whatever the command, and even with `--force`. Paths are compared as real
 * paths (symlinks in existing parents resolved; an existing output or input resolved itself), and
 * existing files are also compared by device + inode (hard links, bind mounts).
 *
 * The commands that write from inputs call `checkOutputApart` before they read or compute anything:
 * `run -o`, `build -o`, `ckpt export -o`, `migrate apply --out`, `migrate new -o`, `migrate plan -o`.
 */
import { lstatSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, resolve as resolvePath, sep } from 'node:path';
import type { Code } from './codes.ts';
import { SoracError } from './errors.ts';

/** The real path of `p`, whether or not it exists: the longest existing ancestor resolved, the rest appended. */
export function realPathOf(p: string): string {
  const abs = resolvePath(p);
  try {
    return realpathSync(abs);
  } catch {
    const parent = dirname(abs);
    if (parent === abs) return abs;
    return resolvePath(realPathOf(parent), basename(abs));
  }
}

const within = (root: string, p: string) => p.startsWith(root.endsWith(sep) ? root : root + sep);

const idOf = (p: string): string | undefined => {
  try {
    const s = statSync(p);
    return `${s.dev}:${s.ino}`;
  } catch {
    return undefined;
  }
};

export interface OutputCheck {
  /** The code of the refusal (a command's own "output path refused" code; SORA7020 by default). */
  readonly code?: Code;
  /** How the user named the output (`-o`, `--out`), for the message. */
  readonly flag?: string;
}

/**
 * Throw when the output `out` is an input, contains one (so replacing it would delete the input), or
 * lies inside one (so writing it would modify the input directory). Inputs that do not name a path
 * (hub ids, built-in names) are ignored. Returns the output's real path.
 */
export function checkOutputApart(out: string, inputs: readonly (string | undefined)[], opts: OutputCheck = {}): string {
  const code = opts.code ?? 'SORA7020';
  const flag = opts.flag ?? '-o';
  const o = realPathOf(out);
  const oAbs = resolvePath(out);
  const oId = idOf(o);
  // a symlink named as the output: the link itself and what it points to both count
  let oLink: string | undefined;
  try {
    if (lstatSync(oAbs).isSymbolicLink()) oLink = resolvePath(realPathOf(dirname(oAbs)), basename(oAbs));
  } catch {
    /* absent */
  }
  for (const input of inputs) {
    if (input === undefined || input === '') continue;
    const absIn = resolvePath(input);
    if (idOf(absIn) === undefined && lstatSafe(absIn) === undefined) continue; // not a path (hub id, built-in name)
    const i = realPathOf(input);
    const refuse = (how: string) => {
      throw new SoracError(code, `${flag} ${out} ${how} ${input}; an output never replaces or modifies an input (not even with --force)`, {
        hint: 'write the output somewhere else (a new path outside every input)',
        path: out,
      });
    };
    if (o === i || (oLink !== undefined && oLink === i) || (oId !== undefined && oId === idOf(i))) refuse('is the input');
    if (within(o, i) || (oLink !== undefined && within(oLink, i))) refuse('contains the input');
    if (within(i, o) || (oLink !== undefined && within(i, oLink))) refuse('lies inside the input');
  }
  return o;
}

function lstatSafe(p: string) {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}
