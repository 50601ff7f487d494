/**
 * The CLIP BPE tokenizer as Open-Sora 2.0 calls it (opensora/models/text/conditioner.py@HEAD,
 * HFEmbedder: `CLIPTokenizer.from_pretrained(path, max_length=77)`, then
 * `tokenizer(prompts, truncation=True, max_length=77, padding="max_length")`): prompts ->
 * `input_ids: i64[B, L]` and `attention_mask: i64[B, L]` for examples/clip_text.sora.
 *
 * Transcribed from transformers 4.57.6 models/clip/tokenization_clip.py (CLIPTokenizer, the slow
 * tokenizer Open-Sora uses) and tokenization_utils(_base).py:
 * - the special tokens (`<|startoftext|>`, `<|endoftext|>`, and the unk/pad strings when they differ)
 *   are cut out of the raw prompt first (added-token trie, longest match); each other chunk is
 *   tokenized on its own;
 * - chunk text = whitespace_clean(ftfy.fix_text(chunk)).lower(): ftfy as in clean.ts (6.x defaults
 *   without mojibake repair), then runs of `regex` `\s` (Unicode White_Space) -> ' ', Python
 *   str.strip(), lower case. Open-Sora's requirements install ftfy, so this is its path (without
 *   ftfy transformers falls back to a BERT BasicTokenizer, not reproduced);
 * - pre-tokenization: the pattern `<|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+`
 *   (case-insensitive), each piece's UTF-8 bytes mapped through bytes_to_unicode;
 * - BPE on the piece with "</w>" on its last symbol, merges by rank (merges.txt lines 1..48894
 *   after the header line, as upstream slices them; a repeated pair keeps its last rank), unknown
 *   tokens -> the unk token's id;
 * - truncation to max_length - 2, then `<|startoftext|> ... <|endoftext|>`, right padding with the
 *   pad token (clip-vit-large-patch14: `<|endoftext|>`, id 49407), attention_mask 1/0.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ftfyFixText, pyStrip } from './clean.ts';
import { TextError } from './errors.ts';
import type { EncodedBatch, EncodeOptions } from './t5-tokenizer.ts';

export interface ClipTokenizerInfo {
  readonly kind: 'vocab.json+merges.txt';
  readonly path: string;
  readonly vocabSize: number;
  readonly merges: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly unkId: number;
}

export interface ClipTokenizer {
  readonly info: ClipTokenizerInfo;
  /** Ids and tokens of one prompt, without the special tokens, truncation or padding. */
  tokenize(prompt: string): { ids: number[]; tokens: string[] };
  /** Open-Sora 2.0: maxLength 77. */
  encode(prompts: readonly string[], opts: EncodeOptions): EncodedBatch;
}

export interface ClipSpecialTokens {
  readonly bos?: string;
  readonly eos?: string;
  readonly unk?: string;
  readonly pad?: string;
}

/** `bytes_to_unicode()`: byte -> printable character, the reversible byte-level alphabet. */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const table: string[] = new Array(256);
  for (const b of bs) table[b] = String.fromCodePoint(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (table[b] === undefined) table[b] = String.fromCodePoint(256 + n++);
  return table;
}

/** The `regex` module's `\s` (Unicode White_Space; unlike Python `re`, no \x1c-\x1f; unlike JS, no \ufeff). */
const REGEX_WS = '\\t\\n\\v\\f\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const WS_RUN = new RegExp(`[${REGEX_WS}]+`, 'gu');
const PIECE = new RegExp(`<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|\\p{L}+|\\p{N}|[^${REGEX_WS}\\p{L}\\p{N}]+`, 'giu');
/** merges.txt lines upstream reads: `[1 : 49152 - 256 - 2 + 1]`. */
const MAX_MERGE_LINE = 49152 - 256 - 2 + 1;

const BYTE_CHARS = bytesToUnicode();
const utf8 = new TextEncoder();

/** CLIPTokenizer's text normalisation of one chunk: whitespace_clean(ftfy.fix_text(text)).lower(). */
export function clipCleanText(text: string): string {
  return pyStrip(ftfyFixText(text).replace(WS_RUN, ' ')).toLowerCase();
}

/** Build a tokenizer from the contents of vocab.json and merges.txt. */
export function clipTokenizerFromFiles(vocabJson: string, mergesTxt: string, path: string, specials: ClipSpecialTokens = {}): ClipTokenizer {
  let parsed: unknown;
  try {
    parsed = JSON.parse(vocabJson);
  } catch (e) {
    throw new TextError('SORA8171', `${path}: vocab.json is not valid JSON (${(e as Error).message})`, 're-download vocab.json of the CLIP tokenizer', [], path);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new TextError('SORA8171', `${path}: vocab.json must be an object of token -> id`, 're-download vocab.json of the CLIP tokenizer', [], path);
  }
  const vocab = new Map<string, number>();
  for (const [tok, id] of Object.entries(parsed as Record<string, unknown>)) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
      throw new TextError('SORA8171', `${path}: vocab.json maps ${JSON.stringify(tok)} to ${JSON.stringify(id)}, not a non-negative integer id`, 're-download vocab.json of the CLIP tokenizer', [], path);
    }
    vocab.set(tok, id);
  }
  // upstream: read().strip().split("\n")[1:48895], each line split on whitespace
  const lines = pyStrip(mergesTxt).split('\n').slice(1, MAX_MERGE_LINE);
  const ranks = new Map<string, number>();
  lines.forEach((line, i) => {
    const parts = line.split(/[\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\x1c-\x1f]+/u).filter((s) => s !== '');
    // a line that is not two symbols can never match a pair; it still takes its rank
    if (parts.length === 2) ranks.set(`${parts[0]} ${parts[1]}`, i);
  });
  const name = (role: keyof ClipSpecialTokens, dflt: string) => specials[role] ?? dflt;
  const strings = { bos: name('bos', '<|startoftext|>'), eos: name('eos', '<|endoftext|>'), unk: name('unk', '<|endoftext|>'), pad: name('pad', '<|endoftext|>') };
  const ids = {} as Record<keyof typeof strings, number>;
  for (const role of ['bos', 'eos', 'unk', 'pad'] as const) {
    const id = vocab.get(strings[role]);
    if (id === undefined) {
      throw new TextError('SORA8172', `${path}: the ${role} token ${JSON.stringify(strings[role])} is not in vocab.json`, 'use the vocab.json that belongs to the tokenizer, or fix the special tokens in tokenizer_config.json / special_tokens_map.json', [], path);
    }
    ids[role] = id;
  }
  // added-token trie: longest special string first at each position
  const special = [...new Set(Object.values(strings))].sort((a, b) => b.length - a.length);
  const splitter = new RegExp(`(${special.map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})`, 'u');
  const cache = new Map<string, string[]>([
    ['<|startoftext|>', ['<|startoftext|>']],
    ['<|endoftext|>', ['<|endoftext|>']],
  ]);

  const bpe = (token: string): string[] => {
    const hit = cache.get(token);
    if (hit) return hit;
    let word = [...token];
    word[word.length - 1] += '</w>';
    while (word.length > 1) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < word.length; i++) {
        const r = ranks.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const first = word[best]!;
      const second = word[best + 1]!;
      const next: string[] = [];
      for (let i = 0; i < word.length; ) {
        if (word[i] === first && i + 1 < word.length && word[i + 1] === second) {
          next.push(first + second);
          i += 2;
        } else {
          next.push(word[i]!);
          i += 1;
        }
      }
      word = next;
    }
    cache.set(token, word);
    return word;
  };

  const tokenize = (prompt: string): { ids: number[]; tokens: string[] } => {
    if (typeof prompt !== 'string') throw new TextError('SORA8109', `prompt must be a string, got ${typeof prompt}`, 'pass each prompt as a string');
    const tokens: string[] = [];
    for (const chunk of prompt.split(splitter)) {
      if (chunk === '') continue;
      if (special.includes(chunk)) {
        tokens.push(chunk);
        continue;
      }
      for (const m of clipCleanText(chunk).matchAll(PIECE)) {
        let mapped = '';
        for (const b of utf8.encode(m[0])) mapped += BYTE_CHARS[b];
        tokens.push(...bpe(mapped));
      }
    }
    return { tokens, ids: tokens.map((t) => vocab.get(t) ?? ids.unk) };
  };

  const encode = (prompts: readonly string[], opts: EncodeOptions): EncodedBatch => {
    const L = opts.maxLength;
    if (!Number.isInteger(L) || L < 2) {
      throw new TextError('SORA8108', `max_length must be an integer of at least 2 (room for <|startoftext|> and <|endoftext|>), got ${L}`, 'Open-Sora 2.0 uses 77 for CLIP');
    }
    const B = prompts.length;
    const data = new BigInt64Array(B * L).fill(BigInt(ids.pad));
    const mask = new BigInt64Array(B * L);
    const lengths: number[] = [];
    const truncated: boolean[] = [];
    prompts.forEach((p, b) => {
      const text = opts.preprocess ? opts.preprocess(p) : p;
      let body = tokenize(text).ids;
      truncated.push(body.length + 2 > L);
      if (body.length + 2 > L) body = body.slice(0, L - 2);
      const row = [ids.bos, ...body, ids.eos];
      row.forEach((id, i) => {
        data[b * L + i] = BigInt(id);
        mask[b * L + i] = 1n;
      });
      lengths.push(row.length);
    });
    return {
      inputIds: { dtype: 'i64', shape: [B, L], data },
      attentionMask: { dtype: 'i64', shape: [B, L], data: mask },
      lengths,
      truncated,
    };
  };

  const info: ClipTokenizerInfo = {
    kind: 'vocab.json+merges.txt',
    path,
    vocabSize: vocab.size,
    merges: ranks.size,
    bosId: ids.bos,
    eosId: ids.eos,
    padId: ids.pad,
    unkId: ids.unk,
  };
  return { info, tokenize, encode };
}

/** Sub-folders where CLIP tokenizer files live, in search order. */
const SUBDIRS = ['', 'tokenizer', 'openai/clip-vit-large-patch14', 'clip-vit-large-patch14'];

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new TextError('SORA8110', `cannot read ${path}: ${(e as Error).message}`, 'check that the file exists and is readable', [path], path);
  }
}

/** Special-token strings from tokenizer_config.json / special_tokens_map.json (string or {content}). */
function readSpecials(dir: string): ClipSpecialTokens {
  const out: Record<string, string> = {};
  for (const f of ['tokenizer_config.json', 'special_tokens_map.json']) {
    const p = join(dir, f);
    if (!existsSync(p)) continue;
    let cfg: Record<string, unknown>;
    try {
      cfg = JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new TextError('SORA8171', `${p}: not valid JSON (${(e as Error).message})`, 're-download the tokenizer files', [p], p);
    }
    for (const role of ['bos', 'eos', 'unk', 'pad']) {
      const v = cfg?.[`${role}_token`];
      const s = typeof v === 'string' ? v : v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string' ? (v as { content: string }).content : undefined;
      if (s !== undefined) out[role] = s; // special_tokens_map.json (read second) wins, as in from_pretrained
    }
  }
  return out;
}

/** Open a CLIP tokenizer from a directory holding vocab.json + merges.txt (or a sub-folder of it). */
export function openClipTokenizer(dir: string): ClipTokenizer {
  const p = resolve(dir);
  let st;
  try {
    st = statSync(p);
  } catch {
    throw new TextError('SORA8170', `no CLIP tokenizer at ${p}: the path does not exist`, 'pass the CLIP directory (openai/clip-vit-large-patch14, with vocab.json and merges.txt)', [p], p);
  }
  const base = st.isFile() ? join(p, '..') : p;
  const roots = [base];
  if (existsSync(join(base, 'snapshots'))) {
    try {
      for (const s of readdirSync(join(base, 'snapshots')).sort()) roots.push(join(base, 'snapshots', s));
    } catch {
      // unreadable: not a candidate
    }
  }
  const looked: string[] = [];
  for (const r of roots) {
    for (const s of SUBDIRS) {
      const d = s ? join(r, s) : r;
      const v = join(d, 'vocab.json');
      const m = join(d, 'merges.txt');
      looked.push(v, m);
      if (existsSync(v) && existsSync(m)) return clipTokenizerFromFiles(readText(v), readText(m), d, readSpecials(d));
    }
  }
  throw new TextError('SORA8170', `no vocab.json + merges.txt under ${p}`, 'pass the CLIP text-encoder directory (e.g. ckpts/openai/clip-vit-large-patch14); both files are needed', looked, p);
}
