/**
 * The README's examples are what the CLI does today: every ```` $ npx sorac ... ```` transcript in a code
 * block is run through the built CLI and its output compared line for line; and `npx sorac` prints no npm
 * warning (no unknown key in a project .npmrc).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, soracBin } from './helpers/cli.ts';

/** `$ npx sorac ARGS` lines in README code blocks, with the lines shown after them (up to the block's end). */
function transcripts(md: string): { args: string[]; expected: string }[] {
  const out: { args: string[]; expected: string }[] = [];
  for (const block of md.matchAll(/```[^\n]*\n([\s\S]*?)```/g)) {
    const lines = block[1]!.split('\n');
    const at = lines.findIndex((l) => l.startsWith('$ npx sorac '));
    if (at < 0) continue;
    out.push({ args: lines[at]!.slice('$ npx sorac '.length).trim().split(/\s+/), expected: lines.slice(at + 1).join('\n').trimEnd() });
  }
  return out;
}

describe('README', () => {
  const cases = transcripts(readFileSync(join(ROOT, 'README.md'), 'utf8'));

  it('has at least one CLI transcript', () => {
    expect(cases.length).toBeGreaterThan(0);
  });

  for (const c of cases)
    it(`sorac ${c.args.join(' ')} prints what the README shows`, () => {
      const r = soracBin(c.args);
      expect((r.out + r.err).trimEnd()).toBe(c.expected);
    });

  it('npx sorac prints no npm warning', () => {
    const r = spawnSync('npx', ['sorac', '--version'], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
    expect(r.status).toBe(0);
    expect(r.stderr).not.toMatch(/npm warn/i);
  });
});
