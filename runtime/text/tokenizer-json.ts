/**
 * A reader for Hugging Face `tokenizer.json` files with a Unigram model — the form T5 tokenizers
 * take when they are saved by a fast tokenizer (T5TokenizerFast, transformers' T5Converter) — and
 * an encoder that follows the `tokenizers` crate (0.2x) step by step:
 *
 * 1. added tokens (tokenizer/added_vocabulary.rs find_matches): the non-normalized added tokens are
 *    cut out of the raw text, leftmost-longest, honouring single_word / lstrip / rstrip; the rest
 *    is normalized, then normalized added tokens are cut out of it the same way;
 * 2. normalizers: Precompiled (spm_precompiled: per extended grapheme cluster of < 6 bytes the
 *    FIRST charsmap rule that is a prefix of the cluster, else per character), Strip, Replace
 *    (string or regex), Prepend, NFC/NFKC/NFD/NFKD, Lowercase, Sequence;
 * 3. pre-tokenizers: WhitespaceSplit, Metaspace (replacement, prepend_scheme always/first/never or
 *    the older add_prefix_space, split), Sequence;
 * 4. model: Unigram (models/unigram/model.rs encode_optimized in f64, fused <unk> runs,
 *    byte_fallback);
 * 5. post-processor: TemplateProcessing (the single-sequence template), or none.
 * Anything else is refused with an error naming the component, rather than encoded differently.
 * The file's own `truncation`/`padding` sections are ignored: callers pass max_length, as
 * transformers does.
 */
import { readFileSync } from 'node:fs';
import { PrecompiledCharsmap } from './charsmap.ts';
import { TextError } from './errors.ts';
import { PieceTrie, utf8, viterbi, type UnigramScoring } from './unigram.ts';

export interface AddedTokenSpec {
  readonly id: number;
  readonly content: string;
  readonly singleWord: boolean;
  readonly lstrip: boolean;
  readonly rstrip: boolean;
  readonly normalized: boolean;
  readonly special: boolean;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { ignoreBOM: true });

/** Rust char::is_whitespace (Unicode White_Space). */
export const RUST_WS = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/u;
const RUST_WS_RUN = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/gu;
const RUST_WS_START = /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/u;
const RUST_WS_END = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/u;

type Normalizer = (s: string) => string;
/** A pre-tokenizer maps one piece to pieces; `first` is true for the piece at original offset 0. */
type PreTokenizer = (pieces: Piece[]) => Piece[];
interface Piece {
  text: string;
  first: boolean;
}

let graphemes: Intl.Segmenter | undefined;

export class TokenizerJson {
  readonly source: string;
  readonly added: readonly AddedTokenSpec[];
  private readonly vocab: string[];
  private readonly vocabIds = new Map<string, number>();
  private readonly addedByContent = new Map<string, AddedTokenSpec>();
  private readonly addedById = new Map<number, AddedTokenSpec>();
  private readonly rawSplit: AddedTokenSpec[];
  private readonly normSplit: AddedTokenSpec[];
  private readonly normalizer: Normalizer | null;
  private readonly preTokenizer: PreTokenizer | null;
  private readonly scoring: UnigramScoring;
  private readonly unkId: number | null;
  private readonly byteFallback: boolean;
  private readonly template: ({ seq: true } | { ids: number[] })[] | null;

  constructor(root: Obj, source: string) {
    this.source = source;
    const model = expectObj(root.model, 'model', source);
    const mtype = model.type;
    if (mtype !== 'Unigram') throw unsupported(source, 'model', mtype, 'Unigram');
    const vocabJson = model.vocab;
    if (!Array.isArray(vocabJson) || vocabJson.length === 0) throw invalid(source, 'model.vocab must be a non-empty list of [piece, score]');
    this.vocab = [];
    const scores = new Float64Array(vocabJson.length);
    const trie = new PieceTrie();
    let minScore = Infinity;
    vocabJson.forEach((e, i) => {
      if (!Array.isArray(e) || typeof e[0] !== 'string' || typeof e[1] !== 'number') throw invalid(source, `model.vocab[${i}] must be [piece, score]`);
      this.vocab.push(e[0]);
      scores[i] = e[1];
      if (e[1] < minScore) minScore = e[1];
      if (!this.vocabIds.has(e[0])) this.vocabIds.set(e[0], i);
      trie.insert(utf8(e[0]), i);
    });
    const unk = model.unk_id;
    this.unkId = typeof unk === 'number' ? unk : null;
    if (this.unkId !== null && (this.unkId < 0 || this.unkId >= this.vocab.length)) throw invalid(source, `model.unk_id ${this.unkId} is outside the vocabulary`);
    this.byteFallback = model.byte_fallback === true;
    this.scoring = { mode: 'hf', trie, scores, maxScore: 0, unkScore: minScore - 10, unkId: this.unkId ?? -1 };

    const added: AddedTokenSpec[] = [];
    const at = root.added_tokens ?? [];
    if (!Array.isArray(at)) throw invalid(source, 'added_tokens must be a list');
    at.forEach((t, i) => {
      const o = expectObj(t, `added_tokens[${i}]`, source);
      if (typeof o.id !== 'number' || typeof o.content !== 'string' || o.content === '') throw invalid(source, `added_tokens[${i}] needs an id and a non-empty content`);
      const spec: AddedTokenSpec = {
        id: o.id,
        content: o.content,
        singleWord: o.single_word === true,
        lstrip: o.lstrip === true,
        rstrip: o.rstrip === true,
        normalized: o.normalized === true,
        special: o.special === true,
      };
      added.push(spec);
      this.addedByContent.set(spec.content, spec);
      this.addedById.set(spec.id, spec);
    });
    this.added = added;
    this.rawSplit = added.filter((t) => !t.normalized);
    this.normSplit = added.filter((t) => t.normalized);
    this.normalizer = root.normalizer == null ? null : buildNormalizer(expectObj(root.normalizer, 'normalizer', source), 'normalizer', source);
    this.preTokenizer = root.pre_tokenizer == null ? null : buildPreTokenizer(expectObj(root.pre_tokenizer, 'pre_tokenizer', source), 'pre_tokenizer', source);
    this.template = root.post_processor == null ? null : this.buildTemplate(expectObj(root.post_processor, 'post_processor', source));
  }

  /** Number of ids: model vocabulary plus added tokens beyond it. */
  get vocabSize(): number {
    let n = this.vocab.length;
    for (const t of this.added) n = Math.max(n, t.id + 1);
    return n;
  }

  /** Special ids the post-processor adds to a single sequence. */
  get addedSingle(): number {
    return this.template ? this.template.reduce((n, t) => n + ('ids' in t ? t.ids.length : 0), 0) : 0;
  }

  tokenToId(token: string): number | undefined {
    return this.addedByContent.get(token)?.id ?? this.vocabIds.get(token);
  }

  idToToken(id: number): string | undefined {
    return this.addedById.get(id)?.content ?? this.vocab[id];
  }

  /** Text after the normalizer (without added-token extraction); for tests and debugging. */
  normalize(text: string): string {
    return this.normalizer ? this.normalizer(text) : text;
  }

  /** Ids and tokens of `text` without the post-processor's special tokens. */
  encodeText(text: string): { ids: number[]; tokens: string[] } {
    const ids: number[] = [];
    const tokens: string[] = [];
    for (const part of splitAdded(text, this.rawSplit)) {
      if (part.token) {
        ids.push(part.token.id);
        tokens.push(part.token.content);
        continue;
      }
      const normalized = this.normalizer ? this.normalizer(part.text) : part.text;
      for (const sub of splitAdded(normalized, this.normSplit)) {
        if (sub.token) {
          ids.push(sub.token.id);
          tokens.push(sub.token.content);
          continue;
        }
        // PreTokenizedString::split drops empty splits (so nothing is prepended to them)
        if (sub.text === '') continue;
        let pieces: Piece[] = [{ text: sub.text, first: part.start === 0 && sub.start === 0 }];
        if (this.preTokenizer) pieces = this.preTokenizer(pieces).filter((p) => p.text !== '');
        for (const p of pieces) this.model(p.text, ids, tokens);
      }
    }
    return { ids, tokens };
  }

  /** TemplateProcessing for one sequence (no post-processor: the ids unchanged). */
  postProcess(ids: readonly number[]): number[] {
    if (!this.template) return [...ids];
    const out: number[] = [];
    for (const t of this.template) {
      if ('seq' in t) out.push(...ids);
      else out.push(...t.ids);
    }
    return out;
  }

  /** models/unigram/model.rs tokenize: Viterbi, fused unknown runs, vocabulary lookup. */
  private model(text: string, ids: number[], tokens: string[]): void {
    if (text === '') return;
    const bytes = enc.encode(text);
    const segs = viterbi(bytes, this.scoring);
    const strs: string[] = [];
    let unkRun = '';
    for (const s of segs) {
      const str = dec.decode(bytes.subarray(s.start, s.end));
      if (this.unkId !== null && s.id === this.unkId) {
        unkRun += str;
      } else {
        if (unkRun) strs.push(unkRun);
        unkRun = '';
        strs.push(str);
      }
    }
    if (unkRun) strs.push(unkRun);
    for (const str of strs) {
      const id = this.vocabIds.get(str);
      if (id !== undefined) {
        ids.push(id);
        tokens.push(str);
        continue;
      }
      if (this.byteFallback) {
        const byteIds = [...enc.encode(str)].map((b) => this.vocabIds.get(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`));
        if (byteIds.every((v) => v !== undefined)) {
          for (const v of byteIds) {
            ids.push(v!);
            tokens.push(this.vocab[v!]!);
          }
          continue;
        }
      }
      if (this.unkId === null) throw new TextError('SORA8106', `${this.source}: the Unigram model has no unk_id but ${JSON.stringify(str)} is not in its vocabulary`, 'use a tokenizer.json whose Unigram model sets unk_id', [], this.source);
      ids.push(this.unkId);
      tokens.push(str);
    }
  }

  private buildTemplate(pp: Obj): ({ seq: true } | { ids: number[] })[] {
    const src = this.source;
    if (pp.type !== 'TemplateProcessing') throw unsupported(src, 'post_processor', pp.type, 'TemplateProcessing');
    const single = pp.single;
    const specials = (pp.special_tokens ?? {}) as Obj;
    if (!Array.isArray(single)) throw invalid(src, 'post_processor.single must be a list');
    return single.map((item, i) => {
      const o = expectObj(item, `post_processor.single[${i}]`, src);
      if (o.Sequence != null) {
        const id = (o.Sequence as Obj).id;
        if (id !== 'A') throw invalid(src, `post_processor.single[${i}] refers to sequence ${JSON.stringify(id)} (only A exists for one prompt)`);
        return { seq: true as const };
      }
      if (o.SpecialToken != null) {
        const name = (o.SpecialToken as Obj).id;
        const sp = typeof name === 'string' ? (specials[name] as Obj | undefined) : undefined;
        const spIds = sp?.ids;
        if (!Array.isArray(spIds) || !spIds.every((x) => typeof x === 'number')) throw invalid(src, `post_processor.special_tokens has no ids for ${JSON.stringify(name)}`);
        return { ids: spIds as number[] };
      }
      throw invalid(src, `post_processor.single[${i}] is neither Sequence nor SpecialToken`);
    });
  }
}

/** Cut `text` around added tokens (added_vocabulary.rs find_matches). */
function splitAdded(text: string, tokens: readonly AddedTokenSpec[]): { text: string; start: number; token?: AddedTokenSpec }[] {
  if (tokens.length === 0 || text === '') return [{ text, start: 0 }];
  const out: { text: string; start: number; token?: AddedTokenSpec }[] = [];
  let offset = 0;
  let i = 0;
  while (i < text.length) {
    // aho-corasick MatchKind::LeftmostLongest: earliest start, then the longest token there
    let best: AddedTokenSpec | undefined;
    for (const t of tokens) {
      if (text.startsWith(t.content, i) && (!best || t.content.length > best.content.length)) best = t;
    }
    if (!best) {
      i++;
      continue;
    }
    let start = i;
    let stop = i + best.content.length;
    i = stop;
    if (best.singleWord) {
      const startSpace = start === 0 || !/[\p{L}\p{N}_]$/u.test(text.slice(0, start));
      const stopSpace = stop === text.length || !/^[\p{L}\p{N}_]/u.test(text.slice(stop));
      if (!startSpace || !stopSpace) continue;
    }
    if (best.lstrip) {
      const m = RUST_WS_END.exec(text.slice(0, start));
      if (m) start = Math.max(start - m[0].length, offset);
    }
    if (best.rstrip) {
      const m = RUST_WS_START.exec(text.slice(stop));
      if (m) stop += m[0].length;
    }
    if (offset < start) out.push({ text: text.slice(offset, start), start: offset });
    out.push({ text: text.slice(start, stop), start, token: best });
    offset = stop;
    i = Math.max(i, stop);
  }
  if (offset < text.length) out.push({ text: text.slice(offset), start: offset });
  return out;
}

function buildNormalizer(n: Obj, where: string, src: string): Normalizer {
  switch (n.type) {
    case 'Sequence': {
      const list = n.normalizers;
      if (!Array.isArray(list)) throw invalid(src, `${where}.normalizers must be a list`);
      const parts = list.map((x, i) => buildNormalizer(expectObj(x, `${where}.normalizers[${i}]`, src), `${where}.normalizers[${i}]`, src));
      return (s) => parts.reduce((acc, f) => f(acc), s);
    }
    case 'Precompiled': {
      const b64 = n.precompiled_charsmap;
      if (typeof b64 !== 'string') throw invalid(src, `${where}.precompiled_charsmap must be a base64 string`);
      const blob = Buffer.from(b64, 'base64');
      const cm = new PrecompiledCharsmap(new Uint8Array(blob.buffer, blob.byteOffset, blob.byteLength), `${src} (${where})`);
      return (s) => precompiledNormalize(cm, s);
    }
    case 'Strip': {
      const left = n.strip_left !== false && n.left !== false;
      const right = n.strip_right !== false && n.right !== false;
      return (s) => {
        let r = s;
        if (left) r = r.replace(RUST_WS_START, '');
        if (right) r = r.replace(RUST_WS_END, '');
        return r;
      };
    }
    case 'Replace': {
      const pat = expectObj(n.pattern, `${where}.pattern`, src);
      const content = n.content;
      if (typeof content !== 'string') throw invalid(src, `${where}.content must be a string`);
      if (typeof pat.String === 'string') {
        const lit = pat.String;
        return (s) => (lit === '' ? s : s.split(lit).join(content));
      }
      if (typeof pat.Regex === 'string') {
        let re: RegExp;
        try {
          re = new RegExp(pat.Regex, 'gu');
        } catch {
          throw unsupported(src, `${where}.pattern.Regex`, pat.Regex, 'a regular expression JavaScript can compile');
        }
        return (s) => s.replace(re, () => content);
      }
      throw invalid(src, `${where}.pattern must be {String} or {Regex}`);
    }
    case 'Prepend': {
      const p = n.prepend;
      if (typeof p !== 'string') throw invalid(src, `${where}.prepend must be a string`);
      return (s) => (s === '' ? s : p + s);
    }
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD': {
      const form = n.type;
      return (s) => s.normalize(form);
    }
    case 'Lowercase':
      return (s) => s.toLowerCase();
    default:
      throw unsupported(src, where, n.type, 'Sequence, Precompiled, Strip, Replace, Prepend, NFC, NFD, NFKC, NFKD, Lowercase');
  }
}

// Characters that always have a grapheme-cluster boundary on both sides when they meet each other
// (UAX #29 GB999: none is Extend, ZWJ, SpacingMark, Prepend, Regional_Indicator, Hangul,
// Extended_Pictographic, a control, CR or LF).
const PLAIN = /^[\x20-\x7e]$|^(?=\p{L})[\p{Script=Latin}\p{Script=Greek}\p{Script=Cyrillic}\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}]$/u;

/**
 * Split `s` into pieces whose ends are guaranteed grapheme boundaries. Node's Intl.Segmenter is
 * quadratic in the length of the string it iterates, so long prompts are segmented in pieces.
 */
function boundaryChunks(s: string, target = 64): string[] {
  if (s.length <= target) return [s];
  const out: string[] = [];
  let start = 0;
  let prevPlain = false;
  let i = 0;
  for (const ch of s) {
    const plain = PLAIN.test(ch);
    if (plain && prevPlain && i - start >= target) {
      out.push(s.slice(start, i));
      start = i;
    }
    prevPlain = plain;
    i += ch.length;
  }
  out.push(s.slice(start));
  return out;
}

/** spm_precompiled Precompiled::normalize_string (see the module comment). */
function precompiledNormalize(cm: PrecompiledCharsmap, s: string): string {
  graphemes ??= new Intl.Segmenter('en', { granularity: 'grapheme' });
  let out = '';
  for (const chunk of boundaryChunks(s)) {
    for (const { segment } of graphemes.segment(chunk)) {
      const bytes = enc.encode(segment);
      if (bytes.length < 6) {
        const norm = cm.firstRule(bytes);
        if (norm !== null) {
          out += norm;
          continue;
        }
      }
      for (const ch of segment) {
        const norm = cm.firstRule(enc.encode(ch));
        out += norm ?? ch;
      }
    }
  }
  return out;
}

function buildPreTokenizer(p: Obj, where: string, src: string): PreTokenizer {
  switch (p.type) {
    case 'Sequence': {
      const list = p.pretokenizers;
      if (!Array.isArray(list)) throw invalid(src, `${where}.pretokenizers must be a list`);
      const parts = list.map((x, i) => buildPreTokenizer(expectObj(x, `${where}.pretokenizers[${i}]`, src), `${where}.pretokenizers[${i}]`, src));
      return (pieces) => parts.reduce((acc, f) => f(acc), pieces);
    }
    case 'WhitespaceSplit':
      return (pieces) => {
        const out: Piece[] = [];
        for (const pc of pieces) {
          // a word keeps `first` only when it starts the piece (original offset 0)
          let pos = 0;
          for (const m of pc.text.matchAll(RUST_WS_RUN)) {
            if (m.index! > pos) out.push({ text: pc.text.slice(pos, m.index), first: pc.first && pos === 0 });
            pos = m.index! + m[0].length;
          }
          if (pos < pc.text.length) out.push({ text: pc.text.slice(pos), first: pc.first && pos === 0 });
        }
        return out;
      };
    case 'Metaspace': {
      const repJson = p.replacement;
      if (typeof repJson !== 'string' || [...repJson].length !== 1) throw invalid(src, `${where}.replacement must be one character`);
      const rep: string = repJson;
      let scheme: string;
      if (typeof p.prepend_scheme === 'string') scheme = p.prepend_scheme;
      else scheme = p.add_prefix_space === false ? 'never' : 'always';
      if (!['always', 'first', 'never'].includes(scheme)) throw unsupported(src, `${where}.prepend_scheme`, scheme, 'always, first, never');
      const split = p.split !== false;
      return (pieces) => {
        const out: Piece[] = [];
        for (const pc of pieces) {
          if (pc.text === '') continue;
          let t: string = pc.text.replaceAll(' ', rep);
          if (!t.startsWith(rep) && (scheme === 'always' || (scheme === 'first' && pc.first))) t = rep + t;
          if (!split) {
            out.push({ text: t, first: pc.first });
            continue;
          }
          // SplitDelimiterBehavior::MergedWithNext: each replacement char starts a new piece
          let cur = '';
          let isFirst = pc.first;
          for (const ch of t) {
            if (ch === rep && cur !== '') {
              out.push({ text: cur, first: isFirst });
              isFirst = false;
              cur = '';
            }
            cur += ch;
          }
          if (cur !== '') out.push({ text: cur, first: isFirst });
        }
        return out;
      };
    }
    default:
      throw unsupported(src, where, p.type, 'Sequence, WhitespaceSplit, Metaspace');
  }
}

function expectObj(v: Json | undefined, where: string, src: string): Obj {
  if (v === null || v === undefined || typeof v !== 'object' || Array.isArray(v)) throw invalid(src, `${where} must be an object`);
  return v;
}

function invalid(src: string, why: string): TextError {
  return new TextError('SORA8106', `${src}: invalid tokenizer.json: ${why}`, 'the file is damaged or not a Hugging Face tokenizer.json: download it again, or use spiece.model', [], src);
}

function unsupported(src: string, where: string, got: Json | undefined, supported: string): TextError {
  return new TextError(
    'SORA8107',
    `${src}: ${where} ${JSON.stringify(got ?? null)} is not supported (supported: ${supported})`,
    'sorac reads the components T5 tokenizers use; if the directory also has spiece.model, use that instead',
    [],
    src,
  );
}

/** Parse tokenizer.json text. */
export function parseTokenizerJson(text: string, source = 'tokenizer.json'): TokenizerJson {
  let root: Json;
  try {
    root = JSON.parse(text) as Json;
  } catch (e) {
    throw invalid(source, `not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  return new TokenizerJson(expectObj(root, 'the top level', source), source);
}

export function readTokenizerJson(path: string): TokenizerJson {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new TextError('SORA8110', `cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`, 'check the path and its permissions', [], path);
  }
  return parseTokenizerJson(text, path);
}
