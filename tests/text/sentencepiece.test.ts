/**
 * SentencePiece layer: ids and pieces of the TS encoder against the REAL sentencepiece library
 * (expected-spm.json, written by tests/fixtures/tokenizer/make_fixtures.py with Debian's
 * python3-sentencepiece) on three models that cover nmt_nfkc / nfkc_cf / no rules, byte fallback,
 * user-defined and control symbols, remove_extra_whitespaces off and treat_whitespace_as_suffix.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { TextError } from '../../runtime/text/errors.ts';
import { loadSentencePiece, readSentencePiece } from '../../runtime/text/sentencepiece.ts';
import { utf8 } from '../../runtime/text/unigram.ts';
import { type Corpus, FIX, fixtureJson } from './helpers.ts';

interface SpmRow {
  ids: number[];
  pieces?: string[];
}
const corpus = fixtureJson<Corpus>('corpus.json');
const expected = fixtureJson<{ sentencepiece: string; models: Record<string, { sha256: string; size: number; rows: SpmRow[] }> }>('expected-spm.json');

function thrown(f: () => unknown): TextError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(TextError);
    return e as TextError;
  }
  throw new Error('expected a TextError');
}

describe.each(Object.keys(expected.models))('%s vs sentencepiece', (model) => {
  const exp = expected.models[model]!;
  const bytes = readFileSync(join(FIX, model));
  const sp = loadSentencePiece(bytes, model);

  it('is the model the expectations were made from', () => {
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(exp.sha256);
    expect(sp.size).toBe(exp.size);
  });

  it.each(corpus.names.map((n, i) => [n, i] as const))('%s', (_name, i) => {
    const got = sp.encode(corpus.texts[i]!);
    expect(got.ids).toEqual(exp.rows[i]!.ids);
    if (exp.rows[i]!.pieces) expect(got.pieces).toEqual(exp.rows[i]!.pieces);
  });
});

describe('model reading', () => {
  const t5 = readSentencePiece(join(FIX, 't5like.model'));

  it('reads the T5-like specs', () => {
    expect(t5.trainerSpec).toMatchObject({ modelType: 1, unkId: 2, eosId: 1, padId: 0, bosId: -1, byteFallback: false });
    expect(t5.normalizerSpec).toMatchObject({ name: 'nmt_nfkc', addDummyPrefix: true, removeExtraWhitespaces: true, escapeWhitespaces: true });
    expect(t5.idToPiece(0)).toBe('<pad>');
    expect(t5.idToPiece(1)).toBe('</s>');
    expect(t5.pieceToId('</s>')).toBe(1);
    expect(t5.pieceToId('not-a-piece-at-all')).toBe(2);
  });

  it('refuses a truncated file with SORA8102', () => {
    const bytes = readFileSync(join(FIX, 't5like.model'));
    for (const cut of [10, 1000, Math.floor(bytes.length / 2), bytes.length - 3]) {
      const e = thrown(() => loadSentencePiece(bytes.subarray(0, cut), 'cut.model'));
      expect(e.code).toBe('SORA8102');
      expect(e.message).toMatch(/cut\.model/);
      expect(e.hint).toBeTruthy();
    }
  });

  it('refuses files that are not a model (empty, JSON text, random bytes)', () => {
    expect(thrown(() => loadSentencePiece(new Uint8Array(0), 'empty.model')).code).toBe('SORA8102');
    expect(thrown(() => loadSentencePiece(new TextEncoder().encode('{"model": {}}'), 'json.model')).code).toBe('SORA8102');
    let seed = 7;
    const rnd = new Uint8Array(4096).map(() => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0), seed >>> 24));
    expect(thrown(() => loadSentencePiece(rnd, 'random.model')).code).toMatch(/^SORA810[2-5]$/);
  });

  // Re-encode the fixture with one field changed (minimal schema: unknown fields are dropped).
  const T = protobuf.Root.fromJSON({
    nested: {
      P: {
        fields: { piece: { type: 'string', id: 1 }, score: { type: 'float', id: 2 }, type: { type: 'int32', id: 3 } },
      },
      TS: { fields: { modelType: { type: 'int32', id: 3 }, byteFallback: { type: 'bool', id: 35 } } },
      M: { fields: { pieces: { rule: 'repeated', type: 'P', id: 1 }, trainerSpec: { type: 'TS', id: 2 } } },
    },
  }).lookupType('M');
  const base = T.toObject(T.decode(readFileSync(join(FIX, 't5like.model')))) as { pieces: { piece: string; score: number; type?: number }[]; trainerSpec: Record<string, unknown> };
  const variant = (edit: (m: typeof base) => void) => {
    const m = structuredClone(base);
    edit(m);
    return T.encode(T.fromObject(m)).finish();
  };

  it('refuses BPE/WORD/CHAR models with SORA8103', () => {
    const e = thrown(() => loadSentencePiece(variant((m) => (m.trainerSpec.modelType = 2)), 'bpe.model'));
    expect(e.code).toBe('SORA8103');
    expect(e.message).toMatch(/BPE/);
  });

  it('refuses inconsistent vocabularies with SORA8104', () => {
    expect(thrown(() => loadSentencePiece(variant((m) => (m.pieces[2]!.type = 1)), 'nounk.model')).message).toMatch(/unk is not defined/);
    expect(thrown(() => loadSentencePiece(variant((m) => (m.pieces[5]!.piece = m.pieces[6]!.piece)), 'dup.model')).message).toMatch(/already defined/);
    expect(thrown(() => loadSentencePiece(variant((m) => m.pieces.push({ piece: '<0x41>', score: 0, type: 6 })), 'byte.model')).message).toMatch(/byte_fallback/);
    expect(thrown(() => loadSentencePiece(variant((m) => (m.trainerSpec.byteFallback = true)), 'nobytes.model')).message).toMatch(/256 byte pieces/);
  });
});

describe('properties', () => {
  const t5 = readSentencePiece(join(FIX, 't5like.model'));
  const fb = readSentencePiece(join(FIX, 'bytefb.model'));
  const anyText = fc.string({ unit: 'binary', maxLength: 80 });

  it('never throws, ids are in range, pieces concatenate to the normalized text', () => {
    fc.assert(
      fc.property(anyText, (s) => {
        for (const sp of [t5, fb]) {
          const r = sp.encode(s);
          expect(r.ids.length).toBe(r.pieces.length);
          for (const id of r.ids) expect(id >= 0 && id < sp.size).toBe(true);
        }
        const r = t5.encode(s);
        expect(r.pieces.join('')).toBe(t5.normalize(s));
      }),
      { numRuns: 300 },
    );
  });

  it('the piece UTF-8 encoder equals TextEncoder, lone surrogates included', () => {
    const units = fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 40 });
    fc.assert(
      fc.property(fc.oneof(units, anyText), (s) => {
        expect(Array.from(utf8(s))).toEqual(Array.from(new TextEncoder().encode(s)));
      }),
      { numRuns: 500 },
    );
  });

  it('byte fallback never yields <unk> and decodes back to the normalized text', () => {
    fc.assert(
      fc.property(anyText, (s) => {
        const r = fb.encode(s);
        expect(r.ids).not.toContain(fb.unkId);
        expect(fb.decode(r.ids)).toBe(fb.normalize(s).replaceAll('\u2581', ' ').replace(/^ /, ''));
      }),
      { numRuns: 300 },
    );
  });

  it('decode(encode(x)) is x with whitespace collapsed when every character is in the vocabulary', () => {
    const word = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz'), minLength: 1, maxLength: 8 });
    const sep = fc.constantFrom(' ', '  ', '\t', '\n', ' \t ');
    fc.assert(
      fc.property(fc.array(fc.tuple(word, sep), { maxLength: 10 }), (parts) => {
        const s = parts.map(([w, p]) => w + p).join('');
        const ids = t5.encode(s).ids;
        const collapsed = s.split(/[ \t\n]+/).filter(Boolean).join(' ');
        expect(t5.decode(ids)).toBe(collapsed);
        expect(t5.encode(t5.decode(ids)).ids).toEqual(ids);
      }),
      { numRuns: 200 },
    );
  });
});
