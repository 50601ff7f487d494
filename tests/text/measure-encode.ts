/**
 * Timing of the text side of `sorac generate` (not a test: no timing is asserted anywhere).
 *
 *   npx tsx tests/text/measure-encode.ts
 *
 * Prints: model load time for the fixture model and for a T5-sized spiece.model (32,000 pieces with
 * the same nmt_nfkc charsmap, ~0.8 MB, synthesized here from the fixture model) and a matching
 * tokenizer.json; encode time for a typical prompt and for the 100 kB corpus prompt, both readers;
 * cleaning time for the same two prompts. Medians over repeated runs, after one warm-up.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { textPreprocessing } from '../../runtime/text/clean.ts';
import { readSentencePiece } from '../../runtime/text/sentencepiece.ts';
import { openT5Tokenizer } from '../../runtime/text/t5-tokenizer.ts';
import { type Corpus, FIX, fixtureJson } from './helpers.ts';

function median(f: () => unknown, runs: number): number {
  f();
  const t: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    f();
    t.push(performance.now() - t0);
  }
  t.sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)]!;
}

const fmt = (ms: number) => (ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(1)} ms`);

const Schema = protobuf.Root.fromJSON({
  nested: {
    P: { fields: { piece: { type: 'string', id: 1 }, score: { type: 'float', id: 2 }, type: { type: 'int32', id: 3 } } },
    M: {
      fields: {
        pieces: { rule: 'repeated', type: 'P', id: 1 },
        trainerSpec: { type: 'bytes', id: 2 },
        normalizerSpec: { type: 'bytes', id: 3 },
      },
    },
  },
});

/** The fixture model grown to 32,000 pieces (seeded lowercase words), T5's size. */
function t5SizedModel(dir: string): { model: string; json: string } {
  const M = Schema.lookupType('M');
  const m = M.toObject(M.decode(readFileSync(join(FIX, 't5like.model')))) as { pieces: { piece: string; score: number; type?: number }[] };
  const have = new Set(m.pieces.map((p) => p.piece));
  let seed = 12345;
  const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  while (m.pieces.length < 32000) {
    const len = 2 + Math.floor(rnd() * 8);
    let w = rnd() < 0.6 ? '\u2581' : '';
    for (let i = 0; i < len; i++) w += String.fromCharCode(97 + Math.floor(rnd() * 26));
    if (have.has(w)) continue;
    have.add(w);
    m.pieces.push({ piece: w, score: -8 - rnd() * 8, type: 1 });
  }
  const model = join(dir, 'spiece.model');
  writeFileSync(model, M.encode(M.fromObject(m)).finish());
  const tj = JSON.parse(readFileSync(join(FIX, 't5like.tokenizer.json'), 'utf8')) as { model: { vocab: [string, number][] }; added_tokens: { id: number; content: string }[]; post_processor: unknown };
  const extra = tj.model.vocab.slice(-100);
  tj.model.vocab = [...m.pieces.map((p) => [p.piece, Math.fround(p.score)] as [string, number]), ...extra];
  for (const t of tj.added_tokens) if (t.content.startsWith('<extra_id_')) t.id = 32000 + 99 - Number(t.content.slice(10, -1));
  const json = join(dir, 'tokenizer.json');
  writeFileSync(json, JSON.stringify(tj));
  return { model, json };
}

const corpus = fixtureJson<Corpus>('corpus.json');
const typical = corpus.texts[corpus.names.indexOf('opensora_sample')]!;
const long = corpus.texts[corpus.names.indexOf('long_100kB')]!;
const dir = mkdtempSync(join(tmpdir(), 'sorac-measure-'));
try {
  const big = t5SizedModel(dir);
  console.log(`node ${process.version}; typical prompt ${typical.length} chars; long prompt ${Buffer.byteLength(long)} bytes`);
  console.log(`load fixture spiece.model (${statSync(join(FIX, 't5like.model')).size} B, 1000 pieces): ${fmt(median(() => readSentencePiece(join(FIX, 't5like.model')), 20))}`);
  console.log(`load T5-sized spiece.model (${statSync(big.model).size} B, 32000 pieces): ${fmt(median(() => openT5Tokenizer(big.model), 10))}`);
  console.log(`load T5-sized tokenizer.json (${statSync(big.json).size} B): ${fmt(median(() => openT5Tokenizer(big.json), 10))}`);
  for (const [name, file] of [['spiece.model', big.model], ['tokenizer.json', big.json]] as const) {
    const tok = openT5Tokenizer(file);
    console.log(`${name}: encode typical prompt, L=300: ${fmt(median(() => tok.encode([typical], { maxLength: 300 }), 200))}`);
    console.log(`${name}: encode 100 kB prompt, L=300: ${fmt(median(() => tok.encode([long], { maxLength: 300 }), 5))}`);
  }
  console.log(`clean (text_preprocessing) typical prompt: ${fmt(median(() => textPreprocessing(typical), 200))}`);
  console.log(`clean (text_preprocessing) 100 kB prompt: ${fmt(median(() => textPreprocessing(long), 3))}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
