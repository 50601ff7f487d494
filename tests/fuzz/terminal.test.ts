/**
 * Tensor keys, metadata and names from a file are shown escaped on a terminal (issue 14 item 12):
 * a key holding an OSC title sequence or a screen clear must not reach the terminal raw.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { memoryIO } from '../../cli/io.ts';
import { main } from '../../cli/main.ts';
import { printable } from '../../core/printable.ts';
import { safetensors } from './make-corpus.ts';

const tmp = mkdtempSync(join(tmpdir(), 'sorac-term-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const EVIL = 'w\x1b]0;pwned\x07\x1b[2J\u009b31m\u202eevil';

async function run(args: string[]) {
  const io = memoryIO({ cwd: tmp });
  const code = await main(args, io);
  return { code, out: io.out, err: io.err };
}

describe('terminal escapes in untrusted text', () => {
  const f = join(tmp, 'evil.safetensors');
  writeFileSync(f, safetensors({ __metadata__: { note: 'a\x1b[31mred' }, [EVIL]: { dtype: 'U8', shape: [1], data_offsets: [0, 1] } }, 1));

  it('printable escapes C0/C1 controls and bidi overrides, keeps newlines and tabs', () => {
    expect(printable('a\x1bb\tc\nd\u009be\u202ef')).toBe('a\\x1bb\tc\nd\\x9be\\u202ef');
  });

  it('sorac inspect shows the key and metadata escaped', async () => {
    const r = await run(['inspect', f]);
    expect(r.code).toBe(0);
    expect(r.out).not.toMatch(/[\x1b\x07\u009b\u202e]/);
    expect(r.out).toContain('w\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\u202eevil');
    expect(r.out).toContain('a\\x1b[31mred');
  });

  it('--json keeps the exact key (JSON escapes it)', async () => {
    const r = await run(['inspect', f, '--json']);
    expect(r.out).not.toMatch(/[\x1b\x07]/);
    expect(JSON.stringify(JSON.parse(r.out))).toContain(JSON.stringify(EVIL).slice(1, -1));
  });

  it('an error message quoting a hostile name is escaped', async () => {
    const g = join(tmp, 'bad\x1b[2J.safetensors');
    writeFileSync(g, safetensors({ a: { dtype: 'toString', shape: [1], data_offsets: [0, 1] } }, 1));
    const r = await run(['inspect', g]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/SORA5002/);
    expect(r.err).not.toMatch(/\x1b/);
  });
});
