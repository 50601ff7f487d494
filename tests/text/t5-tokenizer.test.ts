/**
 * openT5Tokenizer: prompts -> [B, L] i64 ids + mask with Open-Sora's max lengths (120/200/300).
 * - spiece.model: Hugging Face T5Tokenizer(legacy=True) semantics, against make_fixtures.py's
 *   transcription of transformers 4.4x running on the real sentencepiece (expected-hf.json "slow");
 * - tokenizer.json: T5TokenizerFast semantics, against the real `tokenizers` with truncation and
 *   padding set as transformers sets them (expected-hf.json "fast").
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunOptions } from '../../index.ts';
import { TextError } from '../../runtime/text/errors.ts';
import { type EncodedBatch, openT5Tokenizer } from '../../runtime/text/t5-tokenizer.ts';
import { textPreprocessing } from '../../runtime/text/clean.ts';
import { type Corpus, FIX, fixtureJson } from './helpers.ts';

type Rows = Record<string, { ids: number[]; mask: number[] }[]>;
const corpus = fixtureJson<Corpus>('corpus.json');
const hf = fixtureJson<{ slow: Rows; fast: Record<string, Rows> }>('expected-hf.json');
const LENGTHS = [120, 200, 300];

const row = (t: EncodedBatch['inputIds'], b: number) => {
  const L = t.shape[1]!;
  return Array.from(t.data.subarray(b * L, (b + 1) * L), Number);
};

const CASES: [string, Rows][] = [
  ['t5like.model', hf.slow],
  ['t5like.tokenizer.json', hf.fast['t5like.tokenizer.json']!],
  ['t5like-legacy.tokenizer.json', hf.fast['t5like-legacy.tokenizer.json']!],
];

describe.each(CASES)('%s', (file, rows) => {
  const tok = openT5Tokenizer(join(FIX, file));
  describe.each(LENGTHS)('max_length %i', (L) => {
    const out = tok.encode(corpus.texts, { maxLength: L });
    it('has the HostTensor shape and dtype the T5 graph takes', () => {
      expect(out.inputIds.dtype).toBe('i64');
      expect(out.inputIds.shape).toEqual([corpus.texts.length, L]);
      expect(out.attentionMask.shape).toEqual([corpus.texts.length, L]);
      expect(out.inputIds.data).toBeInstanceOf(BigInt64Array);
    });
    it.each(corpus.names.map((n, i) => [n, i] as const))('%s', (_n, b) => {
      expect(row(out.inputIds, b)).toEqual(rows[String(L)]![b]!.ids);
      expect(row(out.attentionMask, b)).toEqual(rows[String(L)]![b]!.mask);
    });
  });
});

describe('edge prompts', () => {
  const tok = openT5Tokenizer(join(FIX, 't5like.model'));
  const fast = openT5Tokenizer(join(FIX, 't5like.tokenizer.json'));

  it('empty prompt: [</s>] then padding', () => {
    for (const t of [tok, fast]) {
      const r = t.encode([''], { maxLength: 120 });
      expect(row(r.inputIds, 0)).toEqual([1, ...Array(119).fill(0)]);
      expect(row(r.attentionMask, 0)).toEqual([1, ...Array(119).fill(0)]);
      expect(r.lengths).toEqual([1]);
    }
  });

  it('100 kB prompt: cut to max_length - 1 then </s>', () => {
    const long = corpus.texts[corpus.names.indexOf('long_100kB')]!;
    expect(new TextEncoder().encode(long).length).toBeGreaterThan(99_000);
    for (const t of [tok, fast]) {
      const r = t.encode([long, 'short'], { maxLength: 300 });
      expect(r.truncated).toEqual([true, false]);
      expect(r.lengths[0]).toBe(300);
      expect(Number(r.inputIds.data[299])).toBe(1);
      expect(row(r.attentionMask, 0).every((m) => m === 1)).toBe(true);
    }
  });

  it('slow and fast differ only where transformers does: a cut ending in </s> gets no second </s> (slow)', () => {
    const b = corpus.names.indexOf('eos_at_cut_120');
    const s = tok.encode([corpus.texts[b]!], { maxLength: 120 });
    const f = fast.encode([corpus.texts[b]!], { maxLength: 120 });
    expect(s.lengths[0]).toBe(119);
    expect(f.lengths[0]).toBe(120);
  });

  it('the batch is an input map run() accepts (the assignment is what `npm run typecheck` checks)', () => {
    const r = tok.encode(['a cat', ''], { maxLength: 8 });
    const inputs: RunOptions['inputs'] = { input_ids: r.inputIds, attention_mask: r.attentionMask };
    expect(Object.keys(inputs)).toEqual(['input_ids', 'attention_mask']);
    expect(r.lengths).toEqual([row(r.attentionMask, 0).filter((m) => m === 1).length, 1]);
  });

  it('the two readers differ on the corpus exactly where transformers\' slow and fast classes do', () => {
    const differs = (file: string) => {
      const other = openT5Tokenizer(join(FIX, file));
      const a = tok.encode(corpus.texts, { maxLength: 120 });
      const b = other.encode(corpus.texts, { maxLength: 120 });
      return corpus.names.filter((_n, i) => row(a.inputIds, i).join() !== row(b.inputIds, i).join());
    };
    // </s> already last (slow adds none), a grapheme with a full-width letter + combining mark
    // (tokenizers' Precompiled takes the first rule for the whole cluster)
    const always = ['fullwidth_plus_combining', 'special_run', 'eos_alone', 'eos_end', 'eos_at_cut_120'];
    expect(differs('t5like.tokenizer.json')).toEqual(always);
    // the 2020 layout splits on Unicode whitespace (U+0085 here) before Metaspace
    expect(differs('t5like-legacy.tokenizer.json').sort()).toEqual([...always, 'controls'].sort());
  });

  it('preprocess runs before tokenizing', () => {
    const a = tok.encode(['<b>A  CAT</b> https://x.com/y'], { maxLength: 20, preprocess: textPreprocessing });
    const b = tok.encode(['a cat'], { maxLength: 20 });
    expect(row(a.inputIds, 0)).toEqual(row(b.inputIds, 0));
  });

  it('bad options and prompts are TextErrors', () => {
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(TextError);
        return (e as TextError).code;
      }
      return 'no error';
    };
    expect(code(() => tok.encode(['x'], { maxLength: 1 }))).toBe('SORA8108');
    expect(code(() => tok.encode(['x'], { maxLength: 12.5 }))).toBe('SORA8108');
    expect(code(() => tok.encode([3 as unknown as string], { maxLength: 10 }))).toBe('SORA8109');
    expect(code(() => tok.encode('x' as unknown as string[], { maxLength: 10 }))).toBe('SORA8109');
  });
});

describe('finding the tokenizer', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'sorac-tok-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const put = (rel: string, src: string) => {
    mkdirSync(join(tmp, rel, '..'), { recursive: true });
    copyFileSync(join(FIX, src), join(tmp, rel));
  };

  it('lists every place looked when there is nothing', () => {
    mkdirSync(join(tmp, 'empty'));
    try {
      openT5Tokenizer(join(tmp, 'empty'));
      throw new Error('expected an error');
    } catch (e) {
      const err = e as TextError;
      expect(err.code).toBe('SORA8101');
      expect(err.looked).toContain(join(tmp, 'empty', 'spiece.model'));
      expect(err.looked).toContain(join(tmp, 'empty', 'tokenizer', 'tokenizer.json'));
      expect(err.looked).toContain(join(tmp, 'empty', 'text_encoder', 'spiece.model'));
      expect(err.render()).toMatch(/looked in:/);
    }
  });

  it('a missing path is SORA8101 too', () => {
    expect(() => openT5Tokenizer(join(tmp, 'nope'))).toThrow(/does not exist/);
  });

  it('finds pipeline sub-folders, prefers spiece.model, honours prefer', () => {
    put('pipe/tokenizer/spiece.model', 't5like.model');
    put('pipe/tokenizer/tokenizer.json', 't5like.tokenizer.json');
    expect(openT5Tokenizer(join(tmp, 'pipe')).info.kind).toBe('spiece.model');
    expect(openT5Tokenizer(join(tmp, 'pipe'), { prefer: 'tokenizer.json' }).info.kind).toBe('tokenizer.json');
    put('te/text_encoder/tokenizer.json', 't5like.tokenizer.json');
    expect(openT5Tokenizer(join(tmp, 'te')).info.path).toBe(join(tmp, 'te', 'text_encoder', 'tokenizer.json'));
  });

  it('resolves a hub-cache repo folder through refs/main', () => {
    const commit = 'a'.repeat(40);
    put(`models--DeepFloyd--t5-v1_1-xxl/snapshots/${commit}/spiece.model`, 't5like.model');
    mkdirSync(join(tmp, 'models--DeepFloyd--t5-v1_1-xxl', 'refs'), { recursive: true });
    writeFileSync(join(tmp, 'models--DeepFloyd--t5-v1_1-xxl', 'refs', 'main'), commit);
    const t = openT5Tokenizer(join(tmp, 'models--DeepFloyd--t5-v1_1-xxl'));
    expect(t.info.path).toContain(commit);
  });

  it('reads extra_ids from tokenizer_config.json', () => {
    put('cfg/spiece.model', 't5like.model');
    writeFileSync(join(tmp, 'cfg', 'tokenizer_config.json'), JSON.stringify({ extra_ids: 10 }));
    const t = openT5Tokenizer(join(tmp, 'cfg'));
    expect(t.info.extraIds).toBe(10);
    expect(t.tokenize('<extra_id_9> x <extra_id_10>').ids[0]).toBe(t.info.vocabSize - 10);
  });

  it('a truncated spiece.model is a clear error, not a crash', () => {
    mkdirSync(join(tmp, 'bad'));
    writeFileSync(join(tmp, 'bad', 'spiece.model'), Buffer.from('\x0a\x08\x0a\x05<pad>'));
    expect(() => openT5Tokenizer(join(tmp, 'bad'))).toThrow(TextError);
  });
});

describe('properties (any unicode prompt)', () => {
  const toks = [openT5Tokenizer(join(FIX, 't5like.model')), openT5Tokenizer(join(FIX, 't5like.tokenizer.json'))];
  const prompt = fc.oneof(fc.string({ unit: 'binary', maxLength: 120 }), fc.string({ unit: 'grapheme', maxLength: 60 }), fc.constantFrom('</s>', '<pad> <unk>', ' <extra_id_3> '));

  it('never throws; ids in range; mask = 1s then 0s; </s> ends the real tokens; pads are <pad>', () => {
    fc.assert(
      fc.property(fc.array(prompt, { minLength: 1, maxLength: 3 }), fc.integer({ min: 2, max: 40 }), (ps, L) => {
        for (const t of toks) {
          const r = t.encode(ps, { maxLength: L });
          ps.forEach((_p, b) => {
            const ids = row(r.inputIds, b);
            const mask = row(r.attentionMask, b);
            const n = r.lengths[b]!;
            expect(n >= 1 && n <= L).toBe(true);
            expect(mask).toEqual([...Array(n).fill(1), ...Array(L - n).fill(0)]);
            expect(ids[n - 1]).toBe(t.info.eosId);
            for (let j = n; j < L; j++) expect(ids[j]).toBe(t.info.padId);
            for (const id of ids) expect(id >= 0 && id < t.info.vocabSize).toBe(true);
          });
        }
      }),
      { numRuns: 150 },
    );
  });

  it('spiece.model and tokenizer.json agree on plain prompts', () => {
    const word = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz,.'), minLength: 1, maxLength: 9 });
    fc.assert(
      fc.property(fc.array(word, { maxLength: 30 }), (ws) => {
        const p = ws.join(' ');
        const [a, b] = toks.map((t) => t.encode([p], { maxLength: 40 }));
        expect(Array.from(a!.inputIds.data)).toEqual(Array.from(b!.inputIds.data));
      }),
      { numRuns: 200 },
    );
  });
});
