/**
 * One registry of diagnostic codes (core/codes.ts) and docs/diagnostics.md say the same thing: the same
 * codes, the same titles, in the same sections; and no source file uses a code the registry lacks.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CODES, type Code, docsAnchor, SECTIONS } from '../../core/codes.ts';

const ROOT = join(import.meta.dirname, '..', '..');

function documented(): Map<string, { title: string; section: string }> {
  const out = new Map<string, { title: string; section: string }>();
  let section = '';
  for (const line of readFileSync(join(ROOT, 'docs', 'diagnostics.md'), 'utf8').split('\n')) {
    const h = /^## (.+)$/.exec(line);
    if (h) section = h[1]!.trim();
    const row = /^\| (SORA\d{4}) \| ([^|]+) \|/.exec(line);
    if (row) {
      expect(out.has(row[1]!), `${row[1]} documented twice`).toBe(false);
      out.set(row[1]!, { title: row[2]!.trim(), section });
    }
  }
  return out;
}

describe('diagnostic code registry', () => {
  const docs = documented();

  it('docs/diagnostics.md lists exactly the registry, with the same titles and sections', () => {
    const fromRegistry = Object.fromEntries(Object.entries(CODES).map(([c, i]) => [c, { title: i.title, section: SECTIONS[i.section] }]));
    expect(Object.fromEntries([...docs].sort())).toEqual(Object.fromEntries(Object.entries(fromRegistry).sort()));
  });

  it('each section heading exists, so docs anchors resolve', () => {
    const headings = new Set([...docs.values()].map((d) => d.section));
    for (const s of Object.values(SECTIONS)) expect(headings.has(s), s).toBe(true);
    expect(docsAnchor('SORA5001')).toBe('docs/diagnostics.md#checkpoints-sora50xx');
  });

  it('every SORA code in the sources is registered', () => {
    const used = new Map<string, string>();
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (/\.(ts|mjs)$/.test(e.name)) for (const m of readFileSync(p, 'utf8').matchAll(/\bSORA(\d{4})\b/g)) used.set(`SORA${m[1]}`, p);
      }
    };
    for (const d of ['core', 'grammar', 'compiler', 'runtime', 'api', 'cli']) walk(join(ROOT, d));
    const unknown = [...used].filter(([c]) => !(c in CODES)).map(([c, f]) => `${c} in ${f}`);
    expect(unknown).toEqual([]);
    expect(used.size).toBeGreaterThan(60);
  });

  it('codes are well formed and the usage/interrupt exits are the documented ones', () => {
    for (const c of Object.keys(CODES)) expect(c).toMatch(/^SORA[1-8]\d{3}$/);
    expect(CODES['SORA7007' as Code].exit).toBe(2);
    expect(CODES['SORA7009' as Code].exit).toBe(130);
  });
});
