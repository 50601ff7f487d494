/**
 * The CLIP BPE tokenizer (runtime/text/clip-tokenizer.ts) against the REAL transformers 4.57.6
 * CLIPTokenizer with real regex + ftfy (tests/fixtures/clip-tokenizer/expected.json, made by
 * make_fixtures.py on the committed vocab.json + merges.txt it learns), called as Open-Sora 2.0
 * calls it: truncation, max_length, padding="max_length".
 */
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { clipTokenizerFromFiles, openClipTokenizer } from '../../runtime/text/clip-tokenizer.ts';
import { TextError } from '../../runtime/text/errors.ts';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'clip-tokenizer');
interface Case {
  prompt: string;
  max_length: number;
  tokens: string[];
  input_ids: number[];
  attention_mask: number[];
}
const exp = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as { source: string; vocab_size: number; pad_token_id: number; bos_token_id: number; eos_token_id: number; cases: Case[] };
const tok = openClipTokenizer(DIR);
const codeOf = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(TextError);
    return (e as TextError).code;
  }
  return undefined;
};

describe('CLIP tokenizer vs transformers CLIPTokenizer', () => {
  it('reads the vocabulary and the special ids as transformers does', () => {
    expect(exp.source).toMatch(/^transformers 4\.57\.6 CLIPTokenizer.*ftfy 6/);
    expect(tok.info.vocabSize).toBe(exp.vocab_size);
    expect([tok.info.bosId, tok.info.eosId, tok.info.padId]).toEqual([exp.bos_token_id, exp.eos_token_id, exp.pad_token_id]);
    expect(exp.cases.length).toBeGreaterThanOrEqual(20);
  });

  it.each(exp.cases.map((c, i) => [i, JSON.stringify(c.prompt).slice(0, 50), c] as const))('#%i %s', (_i, _p, c) => {
    expect(tok.tokenize(c.prompt).tokens).toEqual(c.tokens);
    const e = tok.encode([c.prompt], { maxLength: c.max_length });
    expect(e.inputIds.shape).toEqual([1, c.max_length]);
    expect(Array.from(e.inputIds.data, Number)).toEqual(c.input_ids);
    expect(Array.from(e.attentionMask.data, Number)).toEqual(c.attention_mask);
    expect(e.lengths[0]).toBe(c.attention_mask.reduce((a, b) => a + b, 0));
  });

  it('encodes a batch row by row, flags truncation', () => {
    const cs = exp.cases.filter((c) => c.max_length === 77);
    const e = tok.encode(cs.map((c) => c.prompt), { maxLength: 77 });
    expect(Array.from(e.inputIds.data, Number)).toEqual(cs.flatMap((c) => c.input_ids));
    expect(e.truncated).toEqual(cs.map((c) => c.tokens.length + 2 > 77));
    expect(e.truncated.filter(Boolean).length).toBeGreaterThanOrEqual(2);
  });
});

describe('CLIP tokenizer errors', () => {
  const vocab = readFileSync(join(DIR, 'vocab.json'), 'utf8');
  const merges = readFileSync(join(DIR, 'merges.txt'), 'utf8');
  it('missing files list where they were looked for (SORA8170)', () => {
    const d = mkdtempSync(join(tmpdir(), 'clip-tok-'));
    expect(codeOf(() => openClipTokenizer(d))).toBe('SORA8170');
    expect(codeOf(() => openClipTokenizer(join(d, 'nope')))).toBe('SORA8170');
  });
  it('finds the files in a tokenizer/ sub-folder and reads pad_token from tokenizer_config.json', () => {
    const d = mkdtempSync(join(tmpdir(), 'clip-tok-'));
    mkdirSync(join(d, 'tokenizer'));
    writeFileSync(join(d, 'tokenizer', 'vocab.json'), vocab);
    writeFileSync(join(d, 'tokenizer', 'merges.txt'), merges);
    writeFileSync(join(d, 'tokenizer', 'tokenizer_config.json'), JSON.stringify({ pad_token: { content: '!', lstrip: false }, model_max_length: 77 }));
    const t = openClipTokenizer(d);
    expect(t.info.padId).toBe(0); // "!" is byte 0x21, the first vocabulary entry
    expect(Number(t.encode(['a'], { maxLength: 5 }).inputIds.data[4])).toBe(0);
  });
  it('a broken vocab.json (SORA8171), a special token not in it (SORA8172)', () => {
    expect(codeOf(() => clipTokenizerFromFiles('{', merges, 'x'))).toBe('SORA8171');
    expect(codeOf(() => clipTokenizerFromFiles('[1]', merges, 'x'))).toBe('SORA8171');
    expect(codeOf(() => clipTokenizerFromFiles('{"a": "b"}', merges, 'x'))).toBe('SORA8171');
    expect(codeOf(() => clipTokenizerFromFiles('{"a": 0}', merges, 'x'))).toBe('SORA8172');
    expect(codeOf(() => clipTokenizerFromFiles(vocab, merges, 'x', { pad: '<pad>' }))).toBe('SORA8172');
  });
  it('bad max_length (SORA8108) and non-string prompts (SORA8109)', () => {
    expect(codeOf(() => tok.encode(['a'], { maxLength: 1 }))).toBe('SORA8108');
    expect(codeOf(() => tok.encode(['a'], { maxLength: 7.5 }))).toBe('SORA8108');
    expect(codeOf(() => tok.encode([3 as unknown as string], { maxLength: 77 }))).toBe('SORA8109');
  });
});
