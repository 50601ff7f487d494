/**
 * `sorac ckpt ls` / `latest` over the fixture experiment (three real Open-Sora layouts) and torn
 * copies of it: a missing shard, a truncated shard, a truncated EMA, running_states.json absent —
 * each is reported incomplete and never picked as the latest.
 */
import { appendFileSync, copyFileSync, mkdirSync, readFileSync, renameSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { inspectCheckpoint, listCheckpoints } from '../../runtime/training/checkpoints.ts';
import { ASYNC20, copyExp, EXP, run, SYNC20, tempRoot, V12 } from './helpers.ts';

const tmp = tempRoot('ls');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('listing the fixture experiment', () => {
  it('finds the three checkpoints in (epoch, step) order, all complete, the last one latest', async () => {
    const l = await listCheckpoints(EXP);
    expect(l.checkpoints.map((c) => c.name)).toEqual([V12, SYNC20, ASYNC20]);
    expect(l.checkpoints.every((c) => c.complete)).toBe(true);
    expect(l.latest?.name).toBe(ASYNC20);
    expect(l.others).toEqual(['config.txt', 'log.txt']);
  });

  it('reads epoch/step/global step from running_states.json and the parts of each layout', async () => {
    const v12 = await inspectCheckpoint(join(EXP, V12));
    expect(v12).toMatchObject({ epoch: 0, step: 2, globalStep: 2, batchSize: 4, layout: 'v1.x' });
    expect(Object.keys(v12.parts).sort()).toEqual(['ema', 'lr_scheduler', 'model', 'optimizer', 'running_states', 'sampler']);
    expect(v12.parts.model).toMatchObject({ path: 'model/', ok: true, files: 3 });
    const a = await inspectCheckpoint(join(EXP, ASYNC20));
    expect(a).toMatchObject({ epoch: 1, step: 1, globalStep: 6, actualUpdateStep: 6, layout: '2.0' });
    expect(a.parts.ema?.path).toBe('ema.safetensors');
    expect(a.parts.master?.ok).toBe(true);
    expect(a.parts.optimizer?.ok).toBe(true);
    expect(a.bytes).toBeGreaterThan(100_000);
  });

  it('CLI table marks the latest; --json is machine-readable', async () => {
    const r = await run(['ckpt', 'ls', EXP]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/3 checkpoints, 3 complete; latest complete: epoch1-global_step6/);
    expect(r.out).toMatch(/^\* +epoch1-global_step6 +1 +1 +6 +model,ema,optim,sched,sampler,master +\d+ KB +complete \(latest\)$/m);
    expect(r.err).toBe('');
    const j = JSON.parse((await run(['ckpt', 'ls', EXP, '--json'])).out);
    expect(j.ok).toBe(true);
    expect(j.latest).toBe(join(EXP, ASYNC20));
    expect(j.checkpoints[0]).toMatchObject({ name: V12, epoch: 0, step: 2, globalStep: 2, complete: true, latest: false });
    expect(j.checkpoints[2].parts.model).toMatchObject({ path: 'model/', ok: true });
    const one = JSON.parse((await run(['ckpt', 'ls', join(EXP, SYNC20), '--json'])).out);
    expect(one.checkpoints.map((c: { name: string }) => c.name)).toEqual([SYNC20]);
  });

  it('latest prints the path for --load', async () => {
    const r = await run(['ckpt', 'latest', EXP]);
    expect(r.code).toBe(0);
    expect(r.out).toBe(join(EXP, ASYNC20) + '\n');
  });
});

type Tear = [string, (d: string) => void, RegExp];
const tears: Tear[] = [
  ['a model shard missing', (d) => unlinkSync(join(d, 'model/model-00002.safetensors')), /model\/model-00002\.safetensors: missing/],
  ['a model shard truncated', (d) => truncateSync(join(d, 'model/model-00001.safetensors'), 3000), /model-00001\.safetensors: truncated: .* file has 3000/],
  ['running_states.json absent', (d) => unlinkSync(join(d, 'running_states.json')), /running_states\.json is missing/],
  ['running_states.json half-written', (d) => writeFileSync(join(d, 'running_states.json'), '{"epoch": 1, "st'), /running_states\.json unreadable/],
  ['ema.safetensors truncated', (d) => truncateSync(join(d, 'ema.safetensors'), 10_000), /ema\.safetensors: truncated/],
  ['an optimizer shard missing', (d) => unlinkSync(join(d, 'optimizer/optimizer-00002.safetensors')), /optimizer\/optimizer-00002\.safetensors: missing/],
  ['the param groups file missing', (d) => unlinkSync(join(d, 'optimizer/pytorch_optim_group.bin')), /pytorch_optim_group\.bin \(param groups\): missing/],
  ['trailing garbage after a shard', (d) => appendFileSync(join(d, 'model/model-00001.safetensors'), Buffer.alloc(5)), /5 trailing bytes/],
  ['no model index yet', (d) => unlinkSync(join(d, 'model/model.safetensors.index.json')), /model\/ has no \*\.index\.json/],
  ['a shard from another save', (d) => copyFileSync(join(d, 'model/model-00002.safetensors'), join(d, 'model/model-00001.safetensors')), /model-00001\.safetensors: holds \d+ tensor\(s\), the index puts \d+ there/],
  ['lr_scheduler truncated (zip without its central directory)', (d) => truncateSync(join(d, 'lr_scheduler'), 300), /lr_scheduler: zip: no end-of-central-directory/],
];

describe('torn checkpoints', () => {
  for (const [what, tear, why] of tears) {
    it(`${what}: incomplete, the older complete one is latest`, async () => {
      const exp = copyExp(tmp, 'torn');
      tear(join(exp, ASYNC20));
      const l = await listCheckpoints(exp);
      const c = l.checkpoints.find((x) => x.name === ASYNC20)!;
      expect(c.complete).toBe(false);
      expect(c.problems.join('\n')).toMatch(why);
      expect(l.latest?.name).toBe(SYNC20);
      const r = await run(['ckpt', 'latest', exp]);
      expect(r.out).toBe(join(exp, SYNC20) + '\n');
      const t = await run(['ckpt', 'ls', exp]);
      expect(t.out).toMatch(/epoch1-global_step6 .* INCOMPLETE: /);
    });
  }

  it('a save in progress (running_states.json written, ema.pt and sampler not yet) is not complete', async () => {
    const exp = copyExp(tmp, 'midsave');
    unlinkSync(join(exp, SYNC20, 'ema.pt'));
    unlinkSync(join(exp, SYNC20, 'sampler'));
    rmSync(join(exp, ASYNC20), { recursive: true });
    const l = await listCheckpoints(exp);
    const c = l.checkpoints.find((x) => x.name === SYNC20)!;
    expect(c.complete).toBe(false);
    expect(c.problems).toContain(`no ema, sampler, which ${V12} has: a save still in progress, or cut short`);
    expect(l.latest?.name).toBe(V12);
    // on its own (nothing older to compare with) it is complete, with warnings
    expect((await inspectCheckpoint(join(exp, SYNC20))).complete).toBe(true);
  });

  it('a torn v1.2 torch shard (zip cut short) is incomplete', async () => {
    const exp = copyExp(tmp, 'torn-v12');
    truncateSync(join(exp, V12, 'model/pytorch_model-00002.bin'), 2000);
    const c = await inspectCheckpoint(join(exp, V12));
    expect(c.complete).toBe(false);
    expect(c.problems[0]).toMatch(/model\/pytorch_model-00002\.bin: zip: /);
  });

  it('none complete: latest exits 1 with the reason for each', async () => {
    const exp = copyExp(tmp, 'none');
    for (const n of [V12, SYNC20, ASYNC20]) unlinkSync(join(exp, n, 'running_states.json'));
    const r = await run(['ckpt', 'latest', exp]);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/SORA5102: no complete checkpoint in .*none of its 3 checkpoint\(s\) is complete/);
    expect(r.err).toMatch(/epoch0-global_step2: running_states\.json is missing/);
    const j = JSON.parse((await run(['ckpt', 'latest', exp, '--json'])).out);
    expect(j).toMatchObject({ ok: false, error: { code: 'SORA5102' } });
  });

  it('an empty or missing experiment dir', async () => {
    mkdirSync(join(tmp, 'empty'), { recursive: true });
    expect((await run(['ckpt', 'latest', join(tmp, 'empty')])).err).toMatch(/holds no epochN-global_stepM/);
    const ls = await run(['ckpt', 'ls', join(tmp, 'empty')]);
    expect(ls.code).toBe(0);
    expect(ls.out).toMatch(/0 checkpoints/);
    const miss = await run(['ckpt', 'ls', join(tmp, 'nope')]);
    expect(miss.code).toBe(1);
    expect(miss.err).toMatch(/SORA5001: no such directory/);
  });

  it('hidden temp dirs of an in-flight sorac write and eval-only leftovers are not checkpoints', async () => {
    const exp = copyExp(tmp, 'hidden');
    renameSync(join(exp, V12), join(exp, '.epoch9-global_step90.sorac-tmp-1-abcd'));
    rmSync(join(exp, SYNC20), { recursive: true });
    mkdirSync(join(exp, SYNC20, 'eval'), { recursive: true });
    writeFileSync(join(exp, SYNC20, 'eval', 'score.json'), '{}');
    const l = await listCheckpoints(exp);
    expect(l.checkpoints.map((c) => c.name)).toEqual([ASYNC20]);
    expect(readFileSync(join(exp, SYNC20, 'eval', 'score.json'), 'utf8')).toBe('{}');
  });
});
