/**
 * Non-tensor pickled objects beside the tensors (argparse.Namespace, a training script's own classes,
 * defaultdict), through the built CLI: read as inert data (never constructed, never called), the tensors
 * load, and a note names what was skipped. A file that names a code-running global (os.system, eval) is
 * still refused. Fixtures are made by tests/fixtures/pickle-objects/make.py with /usr/bin/python3 + torch.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT, soracBin, STACK_FRAME } from '../helpers/cli.ts';

const D = mkdtempSync(join(tmpdir(), 'sorac-pyobj-'));
const FIX = join(ROOT, 'tests/fixtures/pickle-objects');
beforeAll(() => {
  execFileSync('/usr/bin/python3', [join(FIX, 'make.py'), D], { stdio: 'pipe', env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } });
}, 120_000);

const inspect = (f: string, ...extra: string[]) => soracBin(['inspect', join(D, f), '--json', ...extra]);

describe('pickled objects beside tensors', () => {
  it("{'state_dict': sd, 'args': argparse.Namespace}: the tensors load, args is inert data, a note names it", () => {
    const r = inspect('ns.pt');
    expect(r.code, r.err).toBe(0);
    const j = JSON.parse(r.out);
    expect(Object.keys(j.tensors).sort()).toEqual(['b', 'w']);
    expect(j.notes.join('\n')).toMatch(/read 1 non-tensor value\(s\) holding pickled objects as inert data, never constructed or called \(kept in extras\): 'args' \(argparse\.Namespace, pathlib\.PurePosixPath\)/);
    expect(j.extras.args).toEqual({ __class__: 'argparse.Namespace', state: { lr: 0.0001, model: 'DiT-XL/2', epochs: 3, out: { __class__: 'pathlib.PurePosixPath', args: ['results', 'x'] } } });
    // --container state_dict picks the same tensors
    expect(JSON.parse(inspect('ns.pt', '--container', 'state_dict').out).tensorCount).toBe(2);
  });

  it("DiT's {'model', 'ema', 'opt', 'args'} checkpoint loads (ema by default, model with --part model)", () => {
    const j = JSON.parse(inspect('dit.pt').out);
    expect(j.tensorCount).toBe(2);
    expect(j.notes.join('\n')).toMatch(/'args' \(argparse\.Namespace/);
    expect(JSON.parse(inspect('dit.pt', '--part', 'model').out).notes.join('\n')).toMatch(/unwrapped \['model'\]/);
  });

  it('an object whose construction has a side effect in Python is never constructed by sorac (torch.load does construct it)', () => {
    const marker = join(D, 'trap-ran');
    rmSync(marker, { force: true });
    const r = inspect('trap.pt');
    expect(r.code, r.err).toBe(0);
    const j = JSON.parse(r.out);
    expect(Object.keys(j.tensors)).toEqual(['w']);
    expect(j.notes.join('\n')).toMatch(/'trap' \(sorac_trap\.Trap\)/);
    expect(existsSync(marker)).toBe(false);
    // the fixture is live: PyTorch's own loader runs Trap.__setstate__ and writes the marker
    execFileSync('/usr/bin/python3', ['-c', `import sys, torch; sys.path.insert(0, ${JSON.stringify(FIX)}); torch.load(${JSON.stringify(join(D, 'trap.pt'))})`], { stdio: 'pipe', env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } });
    expect(existsSync(marker)).toBe(true);
    rmSync(marker, { force: true });
  });

  it('a dict subclass (defaultdict: REDUCE, then SETITEMS) is recorded with its items', () => {
    const j = JSON.parse(inspect('dd.pt').out);
    expect(j.extras.dd).toEqual({ __class__: 'collections.defaultdict', args: ['<builtins.list>'], items: { a: [1] } });
  });

  it('a file naming a code-running global (os.system, eval) is still refused, and nothing runs', () => {
    rmSync('/tmp/sorac-pwned', { force: true });
    for (const f of ['malicious.pt', 'malicious_eval.pt']) {
      const r = soracBin(['inspect', join(ROOT, 'tests/fixtures/ckpt/torch', f)]);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/error: SORA5003: .*refusing pickle global (posix\.system|builtins\.eval): torch\.load would call it/);
      expect(r.err).not.toMatch(STACK_FRAME);
    }
    expect(existsSync('/tmp/sorac-pwned')).toBe(false);
  });
});
