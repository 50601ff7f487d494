/**
 * Where the config comes from when a checkpoint is given (issue 15 item 4, issue 17 --config auto), through
 * the CLI's main: a config.json beside the weights is read with a note; --config takes a directory or a hub
 * id (the weights resolver, offline); with --weights and no --config the config is inferred from the
 * checkpoint (one note line) when one reproduces it exactly, else the base config is used and the strict
 * load report says what disagrees.
 */
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { memoryIO } from '../../cli/io.ts';
import { main } from '../../cli/main.ts';
import { compile } from '../../compiler/compile.ts';
import { fsHost } from '../../compiler/host.ts';
import { sparseSafetensors } from '../helpers/sparse-safetensors.ts';

async function sorac(...args: string[]) {
  const io = memoryIO();
  const code = await main(args, io);
  return { code, out: io.out, err: io.err };
}

const GOLDEN = 'tests/fixtures/golden';
const envBefore = process.env.HF_HUB_CACHE;
afterEach(() => {
  if (envBefore === undefined) delete process.env.HF_HUB_CACHE;
  else process.env.HF_HUB_CACHE = envBefore;
});

describe('config for a checkpoint', () => {
  it('a small-config snapshot without --config: the config is inferred, one note, the strict load passes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sorac-cfg-'));
    copyFileSync(join(GOLDEN, 'stdit2/a/model.safetensors'), join(dir, 'model.safetensors'));
    const r = await sorac('check', 'examples/stdit2.sora', '--weights', join(dir, 'model.safetensors'));
    expect(r.err).toMatch(/^note: config: inferred from the weights \(12 values determined by the shapes; input_sq_size, class_dropout_prob, drop_path, no_temporal_pos_emb, qk_norm_legacy, enable_flash_attn and 1 more from the defaults\); --config FILE overrides\n/);
    expect(r.err.split('\n').filter((l) => l.startsWith('note: config')).length).toBe(1);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/ok/);
  }, 120_000);

  it('--set pins a value: the weights do not override it (and the strict load then says what disagrees)', async () => {
    const r = await sorac('check', 'examples/stdit2.sora', '--weights', join(GOLDEN, 'stdit2/a/model.safetensors'), '--set', 'depth=3');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/note: config: no config of STDiT2 reproduces the weights .*using the defaults and --set/);
    expect(r.out).toMatch(/result: FAILED: 24 missing, 82 shape mismatches/);
  }, 120_000);

  it('a config.json beside the weights is read, with a note', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sorac-cfg-'));
    copyFileSync(join(GOLDEN, 'stdit3/a/model.safetensors'), join(dir, 'model.safetensors'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ hidden_size: 64, depth: 2, num_heads: 2, caption_channels: 32, model_max_length: 8 }));
    const r = await sorac('check', 'examples/stdit3.sora', '--weights', dir, '--json');
    expect(r.code).toBe(0);
    const d = JSON.parse(r.out);
    expect(d.ok).toBe(true);
    expect(r.err).toBe(''); // --json: the notes are in the document
    expect(d.configNotes).toEqual([expect.stringMatching(/beside the weights/), expect.stringMatching(/inferred from the weights/)]);
    const t = await sorac('check', 'examples/stdit3.sora', '--weights', dir);
    expect(t.err).toContain(`note: config: read ${join(dir, 'config.json')} beside the weights`);
    // num_heads = 4 is in the shapes (rope.freqs) and wins over config.json's 2; config.json fills the rest
    expect(t.err).toMatch(/note: config: inferred from the weights \(12 values determined by the shapes; .* from config\.json\)/);
  }, 120_000);

  it('--config DIR reads DIR/config.json; --config HUB_ID through the local hub cache', async () => {
    const w = join(GOLDEN, 'stdit3/a/model.safetensors');
    const byDir = await sorac('check', 'examples/stdit3.sora', '--config', join(GOLDEN, 'stdit3/a'), '--weights', w);
    expect(byDir.err).toContain(`note: config: ${join(process.cwd(), GOLDEN, 'stdit3/a/config.json')} (from --config ${join(GOLDEN, 'stdit3/a')})`);
    expect(byDir.code).toBe(0);
    const cache = mkdtempSync(join(tmpdir(), 'sorac-hub-'));
    const repo = join(cache, 'models--acme--tiny-stdit3');
    const commit = 'a'.repeat(40);
    mkdirSync(join(repo, 'snapshots', commit), { recursive: true });
    mkdirSync(join(repo, 'refs'), { recursive: true });
    writeFileSync(join(repo, 'refs', 'main'), commit);
    copyFileSync(join(GOLDEN, 'stdit3/a/config.json'), join(repo, 'snapshots', commit, 'config.json'));
    process.env.HF_HUB_CACHE = cache;
    const byHub = await sorac('check', 'examples/stdit3.sora', '--config', 'acme/tiny-stdit3', '--weights', w);
    expect(byHub.err).toMatch(/note: config: .*snapshots\/a{40}\/config\.json \(from --config acme\/tiny-stdit3, local hub cache\)/);
    expect(byHub.code).toBe(0);
    const missing = await sorac('check', 'examples/stdit3.sora', '--config', 'acme/not-there');
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/SORA5001/);
  }, 120_000);

  it('migrate diff --to-config auto: the .sora side at the config inferred from the checkpoint side', async () => {
    const w = join(GOLDEN, 'stdit3/a/model.safetensors');
    const auto = await sorac('migrate', 'diff', w, 'examples/stdit3.sora', '--to-config', 'auto', '--exit-code');
    expect(auto.err).toMatch(/note: config: inferred from the weights/);
    expect(auto.out).toMatch(/no differences: same keys, shapes and dtypes/);
    expect(auto.code).toBe(0);
    const plain = await sorac('migrate', 'diff', w, 'examples/stdit3.sora', '--exit-code');
    expect(plain.out).toMatch(/884 only in TO, 88 reshaped/); // a diff keeps the defaults unless asked
    const bad = await sorac('migrate', 'diff', 'examples/stdit2.sora', 'examples/stdit3.sora', '--to-config', 'auto');
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--to-config auto needs a checkpoint on the other side/);
  }, 120_000);

  it('values the shapes give only as a product are not guessed: the load report names the tensor, the note the values', async () => {
    const w = join(GOLDEN, 'stdit/a/model.safetensors'); // STDiT 1.0: pos_embed is (H/p)*(W/p); no config.json beside
    const r = await sorac('check', 'examples/stdit.sora', '--weights', w);
    expect(r.err).toMatch(/note: config: inferred from the weights except input_size\[1\], input_size\[2\]: the shapes give only a product \(they come from the defaults\); give them with --set or a config file/);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/result: FAILED: 1 shape mismatch\n/);
    expect(r.out).toMatch(/pos_embed +model \[1,256,64\] vs checkpoint \[1,16,64\]/);
    const given = await sorac('check', 'examples/stdit.sora', '--weights', w, '--set', 'input_size=[4,8,8]');
    expect(given.code).toBe(0);
    expect(given.out).toMatch(/result: OK/);
  }, 120_000);

  it('--config auto needs --weights (usage error, exit 2)', async () => {
    const r = await sorac('check', 'examples/stdit3.sora', '--config', 'auto');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/SORA7007: --config auto needs --weights/);
  });

  it('no config fits: the base config is used and the strict load report still names what disagrees', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sorac-cfg-'));
    const m = compile({ file: 'examples/stdit3.sora', host: fsHost });
    const h: Record<string, readonly number[]> = {};
    for (const [k, e] of Object.entries(m.keymap!.tensors)) if (!k.includes('.mlp.fc2.')) h[k] = e.shape;
    const w = sparseSafetensors(join(dir, 'odd.safetensors'), h);
    const r = await sorac('check', 'examples/stdit3.sora', '--weights', w);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/note: config: no config of STDiT3 reproduces the weights \(\d+\.\d% of tensors fit at the closest\); using the defaults/);
    expect(r.out).toMatch(/result: FAILED: 112 missing/);
    expect(r.out).toMatch(/spatial_blocks\.\{0\.\.27\}\.mlp\.fc2\.weight/);
  }, 120_000);
});
