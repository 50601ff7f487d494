import { describe, expect, it } from 'vitest';
import { compile, traceEntry } from '../../compiler/compile.ts';
import { fsHost } from '../../compiler/host.ts';
import { type Keymap, parameterCount } from '../../core/keymap.ts';
import { compileExample, goldenConfig, goldenMeta } from '../helpers/parity.ts';

const FILE = 'examples/t5.sora';
/** The tied alias of shared.weight (same tensor in HF; counted once in published numbers). */
const ALIAS = 'encoder.embed_tokens.weight';

const keymap = (config: Record<string, unknown> = {}): Keymap => compileExample(FILE, config).keymap!;
const numel = (km: Keymap, k: string) => km.tensors[k]!.shape.reduce((a, b) => a * b, 1);
/** Distinct parameters: every key once, the tied alias not counted twice (= model.num_parameters()). */
// the alias is declared with `alias`, so parameterCount already counts the tied tensor once
const distinctParams = (km: Keymap) => parameterCount(km);

// google/t5-v1_1-xxl as a T5EncoderModel export writes it (LTX-Video / CogVideoX text_encoder/config.json form)
const HF_CONFIG_JSON = {
  _name_or_path: 'google/t5-v1_1-xxl',
  architectures: ['T5EncoderModel'],
  classifier_dropout: 0.0,
  d_ff: 10240,
  d_kv: 64,
  d_model: 4096,
  decoder_start_token_id: 0,
  dense_act_fn: 'gelu_new',
  dropout_rate: 0.1,
  eos_token_id: 1,
  feed_forward_proj: 'gated-gelu',
  initializer_factor: 1.0,
  is_encoder_decoder: true,
  is_gated_act: true,
  layer_norm_epsilon: 1e-6,
  model_type: 't5',
  num_decoder_layers: 24,
  num_heads: 64,
  num_layers: 24,
  output_past: true,
  pad_token_id: 0,
  relative_attention_max_distance: 128,
  relative_attention_num_buckets: 32,
  tie_word_embeddings: false,
  torch_dtype: 'float32',
  transformers_version: '4.46.2',
  use_cache: true,
  vocab_size: 32128,
};

describe('T5Encoder keymap', () => {
  it('equals the golden T5EncoderModel state_dict exactly (keys, shapes, f32 params) at the golden config', () => {
    const km = keymap(goldenConfig('t5'));
    const golden = goldenMeta('t5').state_dict as { key: string; shape: number[]; dtype: string; kind: string }[];
    const want = Object.fromEntries(golden.map((e) => [e.key, e.shape]));
    const got = Object.fromEntries(Object.entries(km.tensors).map(([k, e]) => [k, [...e.shape]]));
    expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
    expect(got).toEqual(want);
    for (const e of Object.values(km.tensors)) {
      expect(e.kind).toBe('param');
      expect(e.dtype).toBe('f32');
    }
    // the alias is a key of its own, same shape as the tensor it aliases
    expect(golden.find((e) => e.key === ALIAS)).toMatchObject({ tied_to: 'shared.weight' });
    expect(km.tensors[ALIAS]!.shape).toEqual(km.tensors['shared.weight']!.shape);
    expect(km.tensors[ALIAS]!.alias).toBe('shared.weight');
    // relative_attention_bias only in block 0
    expect(Object.keys(km.tensors).filter((k) => k.includes('relative_attention_bias'))).toEqual(['encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight']);
    expect(distinctParams(km)).toBe(goldenMeta('t5').num_parameters);
  });

  it('defaults = t5-v1_1-xxl: 220 keys (219 tensors + the tied alias), 4,762,310,656 parameters', () => {
    const km = keymap();
    expect(km.model).toBe('T5Encoder');
    expect(km.version).toBe('1.1');
    expect(Object.keys(km.tensors)).toHaveLength(220);
    // formats.md §2.2, from the key table:
    //   shared 32128*4096 + 24 * (4 * 4096^2 + 3 * 10240*4096 + 2 * 4096) + 32*64 + 4096
    const perBlock = 4 * 4096 * 4096 + 3 * 10240 * 4096 + 2 * 4096;
    const expected = 32128 * 4096 + 24 * perBlock + 32 * 64 + 4096;
    expect(expected).toBe(4_762_310_656);
    expect(distinctParams(km)).toBe(4_762_310_656);
    // what a checkpoint holding both names stores (torch.save of state_dict())
    expect(parameterCount(km) + numel(km, ALIAS)).toBe(4_762_310_656 + 32128 * 4096);
    expect(km.tensors['encoder.block.23.layer.1.DenseReluDense.wo.weight']!.shape).toEqual([4096, 10240]);
    expect(km.tensors['encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight']!.shape).toEqual([32, 64]);
    expect(km.tensors['encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight']).toBeUndefined();
  });

  it('accepts an HF config.json: extra keys are warned about and ignored, same contract as the defaults', () => {
    const m = compile({ file: FILE, host: fsHost, config: { file: { path: 'config.json', values: HF_CONFIG_JSON } } });
    expect(m.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const warn = m.diagnostics.find((d) => d.code === 'SORA7004');
    expect(warn?.severity).toBe('warning');
    for (const k of ['_name_or_path', 'architectures', 'model_type', 'output_past', 'transformers_version']) expect(warn!.message).toContain(k);
    // torch_dtype is an upstream parameter the model fixes (the dtype policy decides): an info line
    expect(warn!.message).not.toContain('torch_dtype');
    expect(m.diagnostics.some((d) => d.code === 'SORA7011' && d.severity === 'info' && d.message.includes('torch_dtype'))).toBe(true);
    expect(warn!.message).not.toContain('dense_act_fn');
    expect(m.keymap!.contract).toBe(keymap().contract);
  });

  it('feed_forward_proj "relu" (T5 v1.0) uses DenseReluDense.wi / wo; is_gated_act from config.json overrides as in HF', () => {
    const relu = keymap({ ...goldenConfig('t5'), feed_forward_proj: 'relu' });
    expect(Object.keys(relu.tensors).filter((k) => k.startsWith('encoder.block.0.layer.1.'))).toEqual([
      'encoder.block.0.layer.1.DenseReluDense.wi.weight',
      'encoder.block.0.layer.1.DenseReluDense.wo.weight',
      'encoder.block.0.layer.1.layer_norm.weight',
    ]);
    expect(relu.tensors['encoder.block.0.layer.1.DenseReluDense.wi.weight']!.shape).toEqual([48, 32]);
    const reluModel = compileExample(FILE, { ...goldenConfig('t5'), feed_forward_proj: 'relu' });
    for (const absent of [[], ['attention_mask']]) {
      const tr = traceEntry(reluModel, 'forward', { absent: new Set(absent) });
      expect(tr.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
      const used = new Set(tr.graph!.weights.map((w) => w.key));
      expect(used.has('encoder.block.1.layer.1.DenseReluDense.wi.weight')).toBe(true);
      // the graph reads the embedding through shared.weight only (the alias is never read)
      expect(used.has('shared.weight')).toBe(true);
      expect(used.has('encoder.embed_tokens.weight')).toBe(false);
    }
    // flan-t5 fp16 shards ship feed_forward_proj "gelu" with is_gated_act true: PretrainedConfig's
    // kwargs override T5Config's derived value, so the model is gated (wi_0 / wi_1)
    const gated = keymap({ ...goldenConfig('t5'), feed_forward_proj: 'gelu', is_gated_act: true });
    expect(gated.tensors['encoder.block.0.layer.1.DenseReluDense.wi_0.weight']).toBeDefined();
    expect(gated.tensors['encoder.block.0.layer.1.DenseReluDense.wi.weight']).toBeUndefined();
  });

  it('rejects an unknown feed_forward_proj with the accepted forms', () => {
    const m = compile({ file: FILE, host: fsHost, config: { values: { feed_forward_proj: 'gated-tanhh' } } });
    const e = m.diagnostics.find((d) => d.severity === 'error');
    expect(e?.message).toMatch(/feed_forward_proj must be ACT or gated-ACT/);
  });
});

describe('T5 tied embedding (alias) at load time', () => {
  it('a checkpoint holding only shared.weight (HF safetensors export) loads strictly; so does one holding only the alias', async () => {
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { openSafetensors } = await import('../../runtime/formats/safetensors.ts');
    const { writeSafetensors } = await import('../../runtime/formats/safetensors-writer.ts');
    const { openWeights } = await import('../../runtime/weights/store.ts');
    const { loadReport } = await import('../../runtime/weights/load-report.ts');
    const { withAliases } = await import('../../runtime/weights/aliases.ts');
    const { GOLDEN } = await import('../helpers/parity.ts');
    const km = compileExample('examples/t5.sora', goldenConfig('t5')).keymap!;
    const src = await openSafetensors(join(GOLDEN, 't5', 'a', 'model.safetensors'));
    const dir = mkdtempSync(join(tmpdir(), 'sorac-t5-alias-'));
    try {
      for (const drop of ['encoder.embed_tokens.weight', 'shared.weight']) {
        const tensors = new Map<string, { dtype: any; shape: readonly number[]; data: Uint8Array }>();
        for (const [k, t] of src.tensors) if (k !== drop) tensors.set(k, { dtype: t.dtype, shape: t.shape, data: await src.read(k) });
        const path = join(dir, `without-${drop}.safetensors`);
        await writeSafetensors(path, tensors);
        const store = await openWeights(path);
        try {
          expect(loadReport(km, store).ok).toBe(false);
          const r = loadReport(km, withAliases(km, store));
          expect(r.ok, JSON.stringify(r.missing)).toBe(true);
          expect(withAliases(km, store).tensors.has('shared.weight')).toBe(true);
        } finally {
          await store.close();
        }
      }
    } finally {
      await src.close();
    }
  });
});
