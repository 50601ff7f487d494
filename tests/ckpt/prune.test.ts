/**
 * `sorac ckpt prune --keep N`: deletes all but the newest N complete checkpoints; never the only
 * complete one, never an incomplete one newer than the latest complete (it may still be being
 * written); `--dry-run` deletes nothing; `eval/` is kept as Open-Sora's rm_checkpoints does.
 */
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listCheckpoints } from '../../runtime/training/checkpoints.ts';
import { ASYNC20, copyExp, run, SYNC20, tempRoot, V12 } from './helpers.ts';

const tmp = tempRoot('prune');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const ckpts = (d: string) => readdirSync(d).filter((n) => n.startsWith('epoch')).sort();

describe('ckpt prune', () => {
  it('--dry-run prints what it would delete and deletes nothing', async () => {
    const exp = copyExp(tmp, 'dry');
    const r = await run(['ckpt', 'prune', exp, '--keep', '1', '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(new RegExp(`would delete .*${SYNC20} \\(\\d+ KB; complete, older than the newest 1\\)`));
    expect(r.out).toMatch(new RegExp(`would delete .*${V12} `));
    expect(r.out).toMatch(/dry run: would delete 2 checkpoint\(s\)/);
    expect(ckpts(exp)).toEqual([V12, SYNC20, ASYNC20]);
  });

  it('--keep 2 deletes the oldest complete one and says so; the rest still lists as complete', async () => {
    const exp = copyExp(tmp, 'keep2');
    const r = await run(['ckpt', 'prune', exp, '--keep', '2']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(new RegExp(`^deleting .*${V12} `, 'm'));
    expect(r.out).toMatch(/deleted 1 checkpoint\(s\)/);
    expect(ckpts(exp)).toEqual([SYNC20, ASYNC20]);
    expect(readdirSync(exp).filter((n) => n.startsWith('.'))).toEqual([]);
    expect((await listCheckpoints(exp)).checkpoints.every((c) => c.complete)).toBe(true);
  });

  it('never deletes an incomplete newer checkpoint (may be in flight); deletes older torn ones unless --keep-incomplete', async () => {
    const exp = copyExp(tmp, 'inflight');
    // a newer save in progress: model shards written, running_states.json not yet
    cpSync(join(exp, ASYNC20), join(exp, 'epoch1-global_step8'), { recursive: true });
    unlinkSync(join(exp, 'epoch1-global_step8', 'running_states.json'));
    // an old torn one
    unlinkSync(join(exp, V12, 'model', 'pytorch_model-00001.bin'));
    const dry = JSON.parse((await run(['ckpt', 'prune', exp, '--keep', '1', '--keep-incomplete', '--dry-run', '--json'])).out);
    expect(dry.plan.map((p: { name: string; action: string }) => `${p.name}:${p.action}`)).toEqual([
      'epoch1-global_step8:keep',
      `${ASYNC20}:keep`,
      `${SYNC20}:delete`,
      `${V12}:keep`,
    ]);
    expect(dry.plan[0].reason).toMatch(/may still be being written/);
    const r = await run(['ckpt', 'prune', exp, '--keep', '1']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/deleting .*epoch0-global_step2 .*incomplete, older than the latest complete one/);
    expect(ckpts(exp)).toEqual([ASYNC20, 'epoch1-global_step8']);
    expect(r.out).toMatch(/keeping +.*epoch1-global_step8 \(incomplete and newer than the latest complete one: may still be being written\)/);
  });

  it('with no complete checkpoint nothing is deleted; --keep 0 is a usage error', async () => {
    const exp = copyExp(tmp, 'none');
    for (const n of [V12, SYNC20, ASYNC20]) unlinkSync(join(exp, n, 'running_states.json'));
    const r = await run(['ckpt', 'prune', exp, '--keep', '1']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/deleted 0 checkpoint/);
    expect(ckpts(exp)).toEqual([V12, SYNC20, ASYNC20]);
    for (const k of ['0', '-1', 'two']) {
      const u = await run(['ckpt', 'prune', exp, '--keep', k]);
      expect(u.code, k).toBe(2);
    }
    expect((await run(['ckpt', 'prune', exp])).code).toBe(2);
  });

  it('keeps eval/ in a pruned checkpoint (as Open-Sora does); ls then skips it', async () => {
    const exp = copyExp(tmp, 'eval');
    mkdirSync(join(exp, V12, 'eval'));
    writeFileSync(join(exp, V12, 'eval', 'fvd.json'), '{"fvd": 1}');
    const r = await run(['ckpt', 'prune', exp, '--keep', '2']);
    expect(r.code).toBe(0);
    expect(readdirSync(join(exp, V12))).toEqual(['eval']);
    expect(existsSync(join(exp, V12, 'eval', 'fvd.json'))).toBe(true);
    expect((await listCheckpoints(exp)).checkpoints.map((c) => c.name)).toEqual([SYNC20, ASYNC20]);
    const again = await run(['ckpt', 'prune', exp, '--keep', '2']);
    expect(again.out).toMatch(/deleted 0 checkpoint/);
  });
});
