/**
 * The hostile-input corpus (tests/fuzz/make-corpus.ts, written to a temp dir here) through every
 * reader: each case ends in the expected typed error (naming its limit where one applies) or
 * succeeds, within a time bound, and never with an untyped exception (a stack trace, exit 70).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SoracError } from '../../core/errors.ts';
import { LimitError } from '../../core/limits.ts';
import { type Case, writeCorpus } from './make-corpus.ts';
import { runCase } from './readers.ts';

const dir = mkdtempSync(join(tmpdir(), 'sorac-hostile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const cases = writeCorpus(dir);

/** Generous for a loaded 2-core CI machine; every case takes well under a second when fixed. */
const BOUND_MS = 15_000;

describe('hostile inputs: a typed error or success, in bounded time', () => {
  it.each(cases.map((c) => [c.name, c] as [string, Case]))('%s', async (_name, c) => {
    const t0 = performance.now();
    let err: unknown;
    try {
      await runCase(c);
    } catch (e) {
      err = e;
    }
    const ms = performance.now() - t0;
    if (c.expect === 'ok') expect(err, String(err)).toBeUndefined();
    else {
      expect(err, String((err as Error)?.stack ?? err)).toBeInstanceOf(SoracError);
      expect((err as SoracError).code, (err as Error).message).toBe(c.expect);
      if (c.limit) {
        expect(err).toBeInstanceOf(LimitError);
        expect((err as LimitError).limit).toBe(c.limit);
        expect((err as SoracError).hint).toMatch(/SORAC_[A-Z_]+=\d+/);
      }
    }
    expect(ms).toBeLessThan(BOUND_MS);
  });
});
