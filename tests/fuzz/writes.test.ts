/**
 * Writes of any size: Node refuses one `fh.write` of 2 GiB or more (ERR_OUT_OF_RANGE), which made
 * every materialised tensor >= 2 GiB a crash (issue 14, item 7). Every writer goes through
 * core/atomic.ts writeFully, which splits below MAX_WRITE_CHUNK; the scan below keeps it that way.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MAX_WRITE_CHUNK, writeFully } from '../../core/atomic.ts';

const ROOT = join(import.meta.dirname, '..', '..');
/** Writes of text that is small by construction (a JSON manifest of file hashes). */
const SMALL = [{ file: 'runtime/training/export.ts', text: 'fh.write(text, half, text.length - half, half)' }];

describe('writes of any size', () => {
  it('writeFully splits every call below the chunk size and loops short writes', async () => {
    const calls: { off: number; len: number; pos: number }[] = [];
    const out = new Uint8Array(100);
    const fh = {
      write: async (b: Uint8Array, off: number, len: number, pos: number) => {
        calls.push({ off, len, pos });
        const n = Math.min(len, 7); // the OS may write less than asked
        out.set(b.subarray(off, off + n), pos);
        return { bytesWritten: n, buffer: b };
      },
    };
    const buf = Uint8Array.from({ length: 90 }, (_, i) => i + 1);
    await writeFully(fh as never, buf, 10, 16);
    expect(calls.every((c) => c.len <= 16)).toBe(true);
    expect([...out.subarray(10)]).toEqual([...buf]);
    expect(MAX_WRITE_CHUNK).toBeLessThan(2 ** 31 - 1);
  });

  it('a real 2 GiB + 1 byte write in one call is what Node refuses (why the chunking exists)', async () => {
    const fs = await import('node:fs/promises');
    const fh = await fs.open('/dev/null', 'w');
    try {
      // an ArrayBuffer is zero-filled lazily by the OS; nothing is touched until written to /dev/null
      const big = new Uint8Array(new ArrayBuffer(2 ** 31 + 1));
      await expect(fh.write(big, 0, big.length, 0)).rejects.toThrow(/out of range|ERR_OUT_OF_RANGE|"length"/i);
      await writeFully(fh, big, 0);
    } finally {
      await fh.close();
    }
  });

  it('no writer in core/ or runtime/ hands fh.write an unbounded length', () => {
    const offenders: string[] = [];
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.name.endsWith('.ts'))
          readFileSync(p, 'utf8').split('\n').forEach((line, i) => {
            // a positional write whose length is "everything left" without a Math.min bound
            if (/\bfh\.write\([^)]*,[^)]*\.(length|byteLength)\s*-\s*\w+/.test(line) && !/Math\.min/.test(line) && !SMALL.some((s) => p.endsWith(s.file) && line.includes(s.text)))
              offenders.push(`${p}:${i + 1}: ${line.trim()}`);
          });
      }
    };
    walk(join(ROOT, 'core'));
    walk(join(ROOT, 'runtime'));
    expect(offenders).toEqual([]);
  });
});
