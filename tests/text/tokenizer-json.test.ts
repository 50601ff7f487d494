/**
 * tokenizer.json layer: the TS pipeline against the REAL Hugging Face `tokenizers` library
 * (expected-hf.json "fast", written by make_fixtures.py) on two layouts of a T5 tokenizer.json
 * built from t5like.model as transformers' T5Converter assembles it: the current one
 * (Sequence[Precompiled, Strip, Replace] + Metaspace(prepend_scheme)) and the published-2020 one
 * (Precompiled + Sequence[WhitespaceSplit, Metaspace(add_prefix_space)]).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TextError } from '../../runtime/text/errors.ts';
import { parseTokenizerJson, readTokenizerJson } from '../../runtime/text/tokenizer-json.ts';
import { type Corpus, FIX, fixtureJson } from './helpers.ts';

const corpus = fixtureJson<Corpus>('corpus.json');
const expected = fixtureJson<{ fast: Record<string, { untruncated: number[][] }> & { tokenizers: string } }>('expected-hf.json');
const FILES = ['t5like.tokenizer.json', 't5like-legacy.tokenizer.json'];

describe.each(FILES)('%s vs tokenizers', (file) => {
  const tj = readTokenizerJson(join(FIX, file));
  const exp = expected.fast[file]!.untruncated;
  it.each(corpus.names.map((n, i) => [n, i] as const))('%s', (_n, i) => {
    expect(tj.encodeText(corpus.texts[i]!).ids).toEqual(exp[i]);
  });
});

describe('tokenizer.json reading', () => {
  const text = readFileSync(join(FIX, 't5like.tokenizer.json'), 'utf8');
  const base = JSON.parse(text) as Record<string, unknown>;
  const withPart = (edit: (j: Record<string, any>) => void) => {
    const j = structuredClone(base) as Record<string, any>;
    edit(j);
    return JSON.stringify(j);
  };
  const err = (src: string) => {
    try {
      parseTokenizerJson(src, 'x/tokenizer.json');
    } catch (e) {
      expect(e).toBeInstanceOf(TextError);
      return e as TextError;
    }
    throw new Error('expected a TextError');
  };

  it('knows the T5 special tokens and the template', () => {
    const tj = parseTokenizerJson(text);
    expect(tj.tokenToId('</s>')).toBe(1);
    expect(tj.tokenToId('<pad>')).toBe(0);
    expect(tj.tokenToId('<extra_id_0>')).toBe(tj.vocabSize - 1);
    expect(tj.tokenToId('<extra_id_99>')).toBe(tj.vocabSize - 100);
    expect(tj.addedSingle).toBe(1);
    expect(tj.postProcess([5, 6])).toEqual([5, 6, 1]);
  });

  it('refuses unsupported components, naming them (SORA8107)', () => {
    const cases: [(j: Record<string, any>) => void, RegExp][] = [
      [(j) => (j.model = { type: 'BPE', vocab: {}, merges: [] }), /model "BPE"/],
      [(j) => (j.normalizer = { type: 'BertNormalizer' }), /normalizer "BertNormalizer"/],
      [(j) => j.normalizer.normalizers.push({ type: 'StripAccents' }), /normalizer\.normalizers\[3\] "StripAccents"/],
      [(j) => (j.pre_tokenizer = { type: 'ByteLevel' }), /pre_tokenizer "ByteLevel"/],
      [(j) => (j.post_processor = { type: 'RobertaProcessing' }), /post_processor "RobertaProcessing"/],
    ];
    for (const [edit, re] of cases) {
      const e = err(withPart(edit));
      expect(e.code).toBe('SORA8107');
      expect(e.message).toMatch(re);
      expect(e.message).toMatch(/x\/tokenizer\.json/);
    }
  });

  it('refuses broken files (SORA8106)', () => {
    expect(err('{"model": ').code).toBe('SORA8106');
    expect(err('[]').code).toBe('SORA8106');
    expect(err(withPart((j) => (j.model.vocab = []))).code).toBe('SORA8106');
    expect(err(withPart((j) => (j.model.vocab[3] = ['x']))).message).toMatch(/vocab\[3\]/);
    expect(err(withPart((j) => (j.normalizer.normalizers[0].precompiled_charsmap = 'AAAA'))).code).toBe('SORA8105');
  });

  it('tokenizes without a post-processor or normalizer when the file has none', () => {
    const tj = parseTokenizerJson(withPart((j) => ((j.post_processor = null), (j.normalizer = null))));
    expect(tj.postProcess([7])).toEqual([7]);
    expect(tj.encodeText('a cat').ids.length).toBeGreaterThan(0);
  });
});
