/**
 * The limits are stated once (core/limits.ts) and documented once (docs/security.md, "## Limits"):
 * the two tables are identical, every limit is raised by its environment variable, and the error
 * names the limit and the variable.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { limit, LimitError, limitExceeded, LIMITS, type LimitName } from '../../core/limits.ts';

const ROOT = join(import.meta.dirname, '..', '..');

function documented(): Map<string, { def: string; env: string; guards: string }> {
  const text = readFileSync(join(ROOT, 'docs', 'security.md'), 'utf8');
  const sec = text.slice(text.indexOf('## Limits'));
  const out = new Map<string, { def: string; env: string; guards: string }>();
  for (const m of sec.matchAll(/^\| (\w+) \| ([\d_]+) \| `(SORAC_\w+)` \| (.+) \|$/gm)) out.set(m[1]!, { def: m[2]!, env: m[3]!, guards: m[4]! });
  return out;
}

describe('resource limits', () => {
  it('docs/security.md lists exactly core/limits.ts (name, default, variable, what it guards)', () => {
    const want = new Map(Object.entries(LIMITS).map(([k, v]) => [k, { def: v.default.toLocaleString('en-US').replace(/,/g, '_'), env: v.env, guards: v.guards }]));
    expect(Object.fromEntries(documented())).toEqual(Object.fromEntries(want));
  });

  it('each limit is raised by its environment variable; junk values keep the default', () => {
    for (const [k, v] of Object.entries(LIMITS) as [LimitName, (typeof LIMITS)[LimitName]][]) {
      expect(limit(k, {})).toBe(v.default);
      expect(limit(k, { [v.env]: '12345' })).toBe(12345);
      expect(limit(k, { [v.env]: '-3' })).toBe(v.default);
      expect(limit(k, { [v.env]: 'lots' })).toBe(v.default);
    }
  });

  it('the error is typed, names the limit and how to raise it', () => {
    const e = limitExceeded('SORA5030', 'tensorDims', 'x.safetensors: a shape has 100000 dimensions', 100_000);
    expect(e).toBeInstanceOf(LimitError);
    expect(e.limit).toBe('tensorDims');
    expect(e.message).toMatch(/tensorDims = 64/);
    expect(e.hint).toMatch(/SORAC_MAX_DIMS=100000/);
  });
});
