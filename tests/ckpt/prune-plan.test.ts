/** Property: whatever the mix of complete and torn checkpoints, the prune plan keeps what it must. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareCheckpoints, planPrune, type CheckpointInfo, type ExperimentListing } from '../../runtime/training/checkpoints.ts';

function listing(items: { epoch: number; step: number; complete: boolean }[]): ExperimentListing {
  const seen = new Set<string>();
  const checkpoints: CheckpointInfo[] = [];
  for (const it of items) {
    const name = `epoch${it.epoch}-global_step${it.step}`;
    if (seen.has(name)) continue;
    seen.add(name);
    checkpoints.push({ name, dir: `/x/${name}`, nameEpoch: it.epoch, nameStep: it.step, parts: {}, layout: '2.0', bytes: 1, mtimeMs: 0, complete: it.complete, problems: it.complete ? [] : ['torn'], warnings: [] });
  }
  checkpoints.sort(compareCheckpoints);
  const complete = checkpoints.filter((c) => c.complete);
  return { dir: '/x', checkpoints, latest: complete[complete.length - 1], others: [] };
}

describe('planPrune', () => {
  it('keeps the newest N complete, never the latest complete, never a newer incomplete one', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ epoch: fc.nat(3), step: fc.nat(50), complete: fc.boolean() }), { maxLength: 25 }),
        fc.integer({ min: 1, max: 6 }),
        fc.boolean(),
        (items, keep, keepIncomplete) => {
          const l = listing(items);
          const plan = planPrune(l, { keep, keepIncomplete });
          expect(plan).toHaveLength(l.checkpoints.length);
          const del = new Set(plan.filter((p) => p.action === 'delete').map((p) => p.checkpoint.name));
          const complete = l.checkpoints.filter((c) => c.complete);
          const keptComplete = complete.filter((c) => !del.has(c.name));
          expect(keptComplete.length).toBe(Math.min(keep, complete.length));
          expect(keptComplete.map((c) => c.name)).toEqual(complete.slice(-keep).map((c) => c.name));
          if (l.latest) expect(del.has(l.latest.name)).toBe(false);
          for (const c of l.checkpoints) {
            if (!c.complete && (!l.latest || compareCheckpoints(c, l.latest) > 0)) expect(del.has(c.name)).toBe(false);
            if (!c.complete && keepIncomplete) expect(del.has(c.name)).toBe(false);
          }
          if (!complete.length) expect(del.size).toBe(0);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('rejects --keep below 1', () => {
    expect(() => planPrune(listing([]), { keep: 0 })).toThrow(/--keep must be an integer >= 1/);
  });
});
