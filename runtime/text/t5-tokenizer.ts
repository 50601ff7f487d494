/**
 * The T5 tokenizer as Open-Sora calls it: prompts -> `input_ids: i64[B, L]` and
 * `attention_mask: i64[B, L]` for the T5 encoder graph (examples/t5.sora `forward`).
 *
 * Two readers behind one interface:
 * - `spiece.model` (what DeepFloyd/t5-v1_1-xxl ships): Hugging Face `T5Tokenizer(legacy=True)`
 *   semantics on top of our SentencePiece encoder, transcribed from transformers 4.4x
 *   models/t5/tokenization_t5.py + tokenization_utils(_base).py: the added tokens `</s>`, `<unk>`,
 *   `<pad>` and `<extra_id_0..N-1>` (ids sp_size-1+N-i, stripping whitespace on both sides) are cut
 *   out of the text first (leftmost match), every other chunk is encoded by SentencePiece on its
 *   own (so it gets the dummy-prefix '▁'), the sequence is cut to max_length-1, `</s>` is appended
 *   unless the (cut) sequence already ends with it, and it is right-padded with `<pad>` (0).
 * - `tokenizer.json` (a fast tokenizer file): the `tokenizers` pipeline (tokenizer-json.ts), cut to
 *   max_length minus the post-processor's special tokens, then the post-processor (`</s>` always
 *   appended), then right padding with `<pad>` — what T5TokenizerFast does.
 * Both give identical ids on ordinary prompts; docs/guides/text-encoding.md lists where they differ.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { TextError } from './errors.ts';
import { readSentencePiece, type SentencePieceProcessor } from './sentencepiece.ts';
import { readTokenizerJson, type TokenizerJson } from './tokenizer-json.ts';

/**
 * Structurally identical to sorac's HostTensor (runtime/host-tensor.ts) for dtype i64; that type is
 * not exported from index.ts, so it is restated here and stays assignable to it.
 */
export interface I64Tensor {
  readonly dtype: 'i64';
  readonly shape: readonly number[];
  readonly data: BigInt64Array;
}

export interface EncodeOptions {
  /** Sequence length L (Open-Sora: 120 for 1.0, 200 for 1.1, 300 for 1.2/1.3, 512 for 2.0). */
  readonly maxLength: number;
  /** Applied to each prompt first (e.g. `textPreprocessing` from clean.ts). */
  readonly preprocess?: (prompt: string) => string;
}

export interface EncodedBatch {
  readonly inputIds: I64Tensor;
  readonly attentionMask: I64Tensor;
  /** Real tokens per prompt (including `</s>`), i.e. the sum of each mask row. */
  readonly lengths: number[];
  /** True where the prompt was cut to fit maxLength. */
  readonly truncated: boolean[];
}

export interface T5TokenizerInfo {
  readonly kind: 'spiece.model' | 'tokenizer.json';
  readonly path: string;
  /** Ids the tokenizer can produce (model vocabulary + extra ids). */
  readonly vocabSize: number;
  readonly padId: number;
  readonly eosId: number;
  readonly unkId: number;
  readonly extraIds: number;
}

export interface T5Tokenizer {
  readonly info: T5TokenizerInfo;
  /** Ids and tokens of one prompt, without `</s>`, truncation or padding. */
  tokenize(prompt: string): { ids: number[]; tokens: string[] };
  encode(prompts: readonly string[], opts: EncodeOptions): EncodedBatch;
}

export interface OpenOptions {
  /** When a directory has both files: which one to read (default spiece.model). */
  readonly prefer?: 'spiece.model' | 'tokenizer.json';
  /** Number of `<extra_id_N>` tokens for spiece.model (default: tokenizer_config.json's extra_ids, else 100). */
  readonly extraIds?: number;
}

/** Sub-folders of a model directory where tokenizer files live, in search order. */
const SUBDIRS = ['', 'tokenizer', 'text_encoder', 't5-v1_1-xxl', 'google/t5-v1_1-xxl', 'tokenizer_2', 'text_encoder_2'];
const FILES = ['spiece.model', 'tokenizer.json'] as const;

/** Open a T5 tokenizer from a file (`*.model` / `*.json`) or a model directory. */
export function openT5Tokenizer(pathOrDir: string, opts: OpenOptions = {}): T5Tokenizer {
  const p = resolve(pathOrDir);
  let st;
  try {
    st = statSync(p);
  } catch {
    throw new TextError('SORA8101', `no tokenizer at ${p}: the path does not exist`, 'pass the T5 model directory (with spiece.model or tokenizer.json) or one of those files', [p], p);
  }
  if (st.isFile()) return openFile(p, opts);
  const looked: string[] = [];
  for (const dir of candidateDirs(p)) {
    const found: Partial<Record<(typeof FILES)[number], string>> = {};
    for (const f of FILES) {
      const fp = join(dir, f);
      looked.push(fp);
      if (existsSync(fp) && statSync(fp).isFile()) found[f] = fp;
    }
    const order = opts.prefer === 'tokenizer.json' ? (['tokenizer.json', 'spiece.model'] as const) : (['spiece.model', 'tokenizer.json'] as const);
    for (const f of order) {
      const fp = found[f];
      if (fp) return openFile(fp, opts);
    }
  }
  throw new TextError(
    'SORA8101',
    `no spiece.model or tokenizer.json under ${p}`,
    'pass the T5 text-encoder directory (e.g. DeepFloyd/t5-v1_1-xxl or a pipeline\'s tokenizer/ folder) or the file itself',
    looked,
    p,
  );
}

/** The directory itself, known sub-folders, and a hub-cache repo's snapshot for refs/main. */
function candidateDirs(dir: string): string[] {
  const out: string[] = [];
  const roots = [dir];
  const refMain = join(dir, 'refs', 'main');
  if (existsSync(refMain)) {
    try {
      const commit = readFileSync(refMain, 'utf8').trim();
      if (/^[0-9a-f]{40}$/.test(commit)) roots.push(join(dir, 'snapshots', commit));
    } catch {
      // unreadable ref: the snapshot is simply not a candidate
    }
  } else if (existsSync(join(dir, 'snapshots'))) {
    try {
      for (const s of readdirSync(join(dir, 'snapshots')).sort()) roots.push(join(dir, 'snapshots', s));
    } catch {
      // unreadable: not a candidate
    }
  }
  for (const r of roots) for (const s of SUBDIRS) out.push(s ? join(r, s) : r);
  return out;
}

function openFile(path: string, opts: OpenOptions): T5Tokenizer {
  if (path.endsWith('.json')) return fromTokenizerJson(readTokenizerJson(path), path);
  const sp = readSentencePiece(path);
  let extraIds = opts.extraIds;
  if (extraIds === undefined) {
    const cfg = join(path, '..', 'tokenizer_config.json');
    extraIds = 100;
    if (existsSync(cfg)) {
      try {
        const c = JSON.parse(readFileSync(cfg, 'utf8')) as { extra_ids?: unknown };
        if (typeof c.extra_ids === 'number' && Number.isInteger(c.extra_ids) && c.extra_ids >= 0) extraIds = c.extra_ids;
      } catch {
        // a broken tokenizer_config.json does not change the vocabulary: keep the default
      }
    }
  }
  return fromSentencePiece(sp, path, extraIds);
}

// ---------------------------------------------------------------------------------------------
// spiece.model: transformers T5Tokenizer(legacy=True)

/** Python str.isspace() characters (what str.strip/lstrip/rstrip remove). */
const PY_WS = '\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000';
const pyRstrip = (s: string) => {
  let e = s.length;
  while (e > 0 && PY_WS.includes(s[e - 1]!)) e--;
  return s.slice(0, e);
};
const pyLstrip = (s: string) => {
  let b = 0;
  while (b < s.length && PY_WS.includes(s[b]!)) b++;
  return s.slice(b);
};

interface Added {
  readonly id: number;
  readonly lstrip: boolean;
  readonly rstrip: boolean;
}

export function fromSentencePiece(sp: SentencePieceProcessor, path: string, extraIds = 100): T5Tokenizer {
  const n = sp.size;
  const need = (piece: string) => {
    const id = sp.pieceToId(piece);
    if (sp.idToPiece(id) !== piece) {
      throw new TextError('SORA8104', `${path}: the model has no ${piece} piece`, 'T5 tokenizers define <pad>=0, </s>=1, <unk>=2: use the spiece.model of a T5 text encoder', [], path);
    }
    return id;
  };
  const eosId = need('</s>');
  const padId = need('<pad>');
  const unkId = need('<unk>');
  const added = new Map<string, Added>();
  for (let i = 0; i < extraIds; i++) added.set(`<extra_id_${i}>`, { id: n - 1 + extraIds - i, lstrip: true, rstrip: true });
  for (const [tok, id] of [['</s>', eosId], ['<unk>', unkId], ['<pad>', padId]] as const) added.set(tok, { id, lstrip: false, rstrip: false });
  const addedList = [...added.keys()];

  const tokenize = (text: string) => {
    const parts = splitOn(text, addedList);
    // PreTrainedTokenizer.tokenize: an added token with rstrip/lstrip eats the whitespace of its
    // right/left neighbour chunk (Python str.lstrip/rstrip).
    for (let i = 0; i < parts.length; i++) {
      const a = parts[i]!.added ? added.get(parts[i]!.text) : undefined;
      if (!a) continue;
      const right = parts[i + 1];
      const left = parts[i - 1];
      if (a.rstrip && right && right.text) right.text = pyLstrip(right.text);
      if (a.lstrip && left && left.text) left.text = pyRstrip(left.text);
    }
    const ids: number[] = [];
    const tokens: string[] = [];
    for (const part of parts) {
      if (!part.text) continue;
      if (part.added) {
        ids.push(added.get(part.text)!.id);
        tokens.push(part.text);
        continue;
      }
      for (const piece of sp.encode(part.text).pieces) {
        // convert_tokens_to_ids: added tokens first, then SentencePiece's piece_to_id
        ids.push(added.get(piece)?.id ?? sp.pieceToId(piece));
        tokens.push(piece);
      }
    }
    return { ids, tokens };
  };

  const info: T5TokenizerInfo = { kind: 'spiece.model', path, vocabSize: n + extraIds, padId, eosId, unkId, extraIds };
  return {
    info,
    tokenize: (prompt) => tokenize(checkPrompt(prompt, 0)),
    encode: (prompts, opts) =>
      batch(prompts, opts, info, (text, maxLength) => {
        let ids = tokenize(text).ids;
        let truncated = false;
        // prepare_for_model: total = len + num_special_tokens_to_add (1); cut from the right
        const total = ids.length + 1;
        if (total > maxLength) {
          const remove = total - maxLength;
          if (ids.length > remove) {
            ids = ids.slice(0, ids.length - remove);
            truncated = true;
          }
        }
        // _add_eos_if_not_present
        if (!(ids.length > 0 && ids[ids.length - 1] === eosId)) ids = [...ids, eosId];
        return { ids, truncated };
      }),
  };
}

/**
 * transformers' Trie.split for the T5 token set. Every T5 added token starts with '<' and has no
 * other '<', so two matches can never overlap and Trie.split reduces to: cut at the leftmost
 * complete match, continue after it (the longest one if several start at the same place).
 */
function splitOn(text: string, tokens: readonly string[]): { text: string; added: boolean }[] {
  const firsts = [...new Set(tokens.map((t) => t[0]!))];
  const next = (from: number) => {
    let best = -1;
    for (const c of firsts) {
      const k = text.indexOf(c, from);
      if (k >= 0 && (best < 0 || k < best)) best = k;
    }
    return best;
  };
  const out: { text: string; added: boolean }[] = [];
  let start = 0;
  let i = next(0);
  while (i >= 0) {
    let match: string | undefined;
    for (const t of tokens) if (text.startsWith(t, i) && (!match || t.length > match.length)) match = t;
    if (match) {
      if (i > start) out.push({ text: text.slice(start, i), added: false });
      out.push({ text: match, added: true });
      start = i + match.length;
      i = next(start);
    } else {
      i = next(i + 1);
    }
  }
  if (start < text.length) out.push({ text: text.slice(start), added: false });
  return out;
}

// ---------------------------------------------------------------------------------------------
// tokenizer.json: T5TokenizerFast

export function fromTokenizerJson(tj: TokenizerJson, path: string): T5Tokenizer {
  const id = (tok: string) => {
    const v = tj.tokenToId(tok);
    if (v === undefined) throw new TextError('SORA8106', `${path}: the tokenizer has no ${tok} token`, 'T5 tokenizers define <pad>, </s> and <unk>: use the tokenizer.json of a T5 text encoder', [], path);
    return v;
  };
  const padId = id('<pad>');
  const eosId = id('</s>');
  const unkId = id('<unk>');
  const extraIds = tj.added.filter((t) => /^<extra_id_\d+>$/.test(t.content)).length;
  const info: T5TokenizerInfo = { kind: 'tokenizer.json', path, vocabSize: tj.vocabSize, padId, eosId, unkId, extraIds };
  const nAdded = tj.addedSingle;
  return {
    info,
    tokenize: (prompt) => tj.encodeText(checkPrompt(prompt, 0)),
    encode: (prompts, opts) =>
      batch(prompts, opts, info, (text, maxLength) => {
        let ids = tj.encodeText(text).ids;
        // tokenizer.rs: truncate to max_length minus the post-processor's added tokens, then
        // post-process (TemplateProcessing appends </s> unconditionally)
        const room = maxLength - nAdded;
        const truncated = ids.length > room;
        if (truncated) ids = ids.slice(0, room);
        return { ids: tj.postProcess(ids), truncated };
      }),
  };
}

// ---------------------------------------------------------------------------------------------

function checkPrompt(p: unknown, i: number): string {
  if (typeof p !== 'string') {
    throw new TextError('SORA8109', `prompt ${i} is ${p === null ? 'null' : typeof p}, not a string`, 'pass prompts as an array of strings', []);
  }
  return p;
}

function batch(
  prompts: readonly string[],
  opts: EncodeOptions,
  info: T5TokenizerInfo,
  one: (text: string, maxLength: number) => { ids: number[]; truncated: boolean },
): EncodedBatch {
  const L = opts?.maxLength;
  if (!Number.isInteger(L) || L < 2) {
    throw new TextError('SORA8108', `maxLength must be an integer >= 2 (got ${String(L)})`, 'Open-Sora uses 120 (1.0), 200 (1.1), 300 (1.2/1.3) and 512 (2.0); at least one token plus </s> must fit', []);
  }
  if (!Array.isArray(prompts)) throw new TextError('SORA8109', 'prompts must be an array of strings', 'wrap a single prompt in an array: encode([prompt], ...)', []);
  const B = prompts.length;
  const ids = new BigInt64Array(B * L);
  const mask = new BigInt64Array(B * L);
  const lengths: number[] = [];
  const truncated: boolean[] = [];
  const pad = BigInt(info.padId);
  prompts.forEach((p0, b) => {
    let p = checkPrompt(p0, b);
    if (opts.preprocess) p = opts.preprocess(p);
    const r = one(p, L);
    for (let j = 0; j < L; j++) {
      const real = j < r.ids.length;
      ids[b * L + j] = real ? BigInt(r.ids[j]!) : pad;
      mask[b * L + j] = real ? 1n : 0n;
    }
    lengths.push(r.ids.length);
    truncated.push(r.truncated);
  });
  return {
    inputIds: { dtype: 'i64', shape: [B, L], data: ids },
    attentionMask: { dtype: 'i64', shape: [B, L], data: mask },
    lengths,
    truncated,
  };
}
