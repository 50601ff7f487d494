/**
 * Unigram-language-model segmentation (Viterbi over all vocabulary pieces), shared by the
 * SentencePiece reader and the tokenizer.json reader.
 *
 * Follows sentencepiece src/unigram_model.cc Model::EncodeOptimized (the default encoder): walk the
 * UTF-8 bytes one character at a time, relax every piece that starts there (shorter pieces first),
 * add an <unk> node of one character when no single-character piece exists, keep the first best
 * path on ties (only a strictly greater score replaces), then backtrack. Two arithmetic modes:
 * - 'spm': sentencepiece keeps scores and path sums in C++ `float` (Math.fround here), and a
 *   USER_DEFINED piece scores `length * max_score - 0.1` (length in bytes); a piece candidate is a
 *   double sum compared against the stored float and stored back as float (this decides ties on
 *   long inputs); an <unk> candidate is a float sum; UNUSED pieces are skipped.
 * - 'hf': the `tokenizers` crate's Unigram (models/unigram/model.rs encode_optimized) does the same
 *   walk in f64 with every vocabulary entry scored as stored.
 */

/**
 * A byte trie over piece strings: walks yield (end, id) shortest first. Edges (node, byte) -> child
 * live in an open-addressing hash table of typed arrays, so a 32,000-piece vocabulary builds in a few
 * milliseconds and lookups allocate nothing.
 */
export class PieceTrie {
  private keys = new Int32Array(1 << 12).fill(-1);
  private children = new Int32Array(1 << 12);
  private shift = 32 - 12;
  private edges = 0;
  private values: Int32Array = new Int32Array(1024).fill(-1);
  private nodes = 1;

  private slot(key: number): number {
    const mask = this.keys.length - 1;
    let h = Math.imul(key, 0x9e3779b1) >>> this.shift;
    while (this.keys[h] !== -1 && this.keys[h] !== key) h = (h + 1) & mask;
    return h;
  }

  private child(node: number, byte: number): number {
    const key = node * 256 + byte;
    const h = this.slot(key);
    return this.keys[h] === key ? this.children[h]! : -1;
  }

  private grow(): void {
    const oldKeys = this.keys;
    const oldChildren = this.children;
    this.keys = new Int32Array(oldKeys.length * 2).fill(-1);
    this.children = new Int32Array(oldKeys.length * 2);
    this.shift -= 1;
    for (let i = 0; i < oldKeys.length; i++) {
      if (oldKeys[i] === -1) continue;
      const h = this.slot(oldKeys[i]!);
      this.keys[h] = oldKeys[i]!;
      this.children[h] = oldChildren[i]!;
    }
  }

  insert(bytes: Uint8Array, id: number): void {
    let node = 0;
    for (let i = 0; i < bytes.length; i++) {
      let next = this.child(node, bytes[i]!);
      if (next < 0) {
        if ((this.edges + 1) * 2 > this.keys.length) this.grow();
        next = this.nodes++;
        const key = node * 256 + bytes[i]!;
        const h = this.slot(key);
        this.keys[h] = key;
        this.children[h] = next;
        this.edges++;
        if (next >= this.values.length) {
          const grown = new Int32Array(this.values.length * 2).fill(-1);
          grown.set(this.values);
          this.values = grown;
        }
      }
      node = next;
    }
    this.values[node] = id;
  }

  /** Calls hit(endExclusive, id) for each piece that is a prefix of bytes[start, end). */
  walk(bytes: Uint8Array, start: number, end: number, hit: (endPos: number, id: number) => void): void {
    let node = 0;
    for (let i = start; i < end; i++) {
      node = this.child(node, bytes[i]!);
      if (node < 0) return;
      const v = this.values[node]!;
      if (v >= 0) hit(i + 1, v);
    }
  }

  /** Length of the longest piece that is a prefix of bytes[start, end) (0 when none). */
  longest(bytes: Uint8Array, start: number, end: number): number {
    let best = 0;
    this.walk(bytes, start, end, (e) => {
      best = e - start;
    });
    return best;
  }
}

/**
 * UTF-8 bytes of a short string (vocabulary pieces), in plain JS: TextEncoder's per-call overhead
 * dominates when 32,000 pieces are encoded one by one. Lone surrogates become U+FFFD, as in
 * TextEncoder.
 */
export function utf8(s: string): Uint8Array {
  const out = new Uint8Array(s.length * 3);
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      out[n++] = c;
      continue;
    }
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
        out[n++] = 0xf0 | (c >> 18);
        out[n++] = 0x80 | ((c >> 12) & 0x3f);
        out[n++] = 0x80 | ((c >> 6) & 0x3f);
        out[n++] = 0x80 | (c & 0x3f);
        continue;
      }
    }
    if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
    if (c < 0x800) {
      out[n++] = 0xc0 | (c >> 6);
      out[n++] = 0x80 | (c & 0x3f);
    } else {
      out[n++] = 0xe0 | (c >> 12);
      out[n++] = 0x80 | ((c >> 6) & 0x3f);
      out[n++] = 0x80 | (c & 0x3f);
    }
  }
  return out.subarray(0, n);
}

/** sentencepiece util.h OneCharLen: the UTF-8 length announced by a lead byte. */
export function oneCharLen(b: number): number {
  return b < 0xc0 ? 1 : b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4;
}

export interface UnigramScoring {
  readonly mode: 'spm' | 'hf';
  readonly trie: PieceTrie;
  readonly scores: Float64Array;
  /** 'spm': piece kinds that change scoring; absent in 'hf' mode. */
  readonly userDefined?: Uint8Array;
  readonly unused?: Uint8Array;
  readonly maxScore: number;
  readonly unkScore: number;
  readonly unkId: number;
}

/** One segment: byte range [start, end) of the normalized input and its vocabulary id. */
export interface Segment {
  readonly start: number;
  readonly end: number;
  readonly id: number;
}

/** Best segmentation of `bytes` (valid UTF-8). Empty input gives no segments. */
export function viterbi(bytes: Uint8Array, s: UnigramScoring): Segment[] {
  const size = bytes.length;
  if (size === 0) return [];
  const f32 = s.mode === 'spm';
  const bestScore = new Float64Array(size + 1);
  const startsAt = new Int32Array(size + 1).fill(-1);
  const bestId = new Int32Array(size + 1).fill(-1);
  let pos = 0;
  while (pos < size) {
    const till = bestScore[pos]!;
    const mblen = Math.min(oneCharLen(bytes[pos]!), size - pos);
    let hasSingle = false;
    const from = pos;
    s.trie.walk(bytes, pos, size, (end, id) => {
      if (f32 && s.unused![id]) return;
      // unigram_model.cc: `const auto score = IsUserDefined ? (length * max_score_ - 0.1) :
      // GetScore(id)` has type double (the conditional's common type), so the candidate is a
      // double sum compared against the float stored so far, and stored back as float.
      const cand = f32 && s.userDefined![id] ? Math.fround((end - from) * s.maxScore) - 0.1 + till : s.scores[id]! + till;
      if (startsAt[end] === -1 || cand > bestScore[end]!) {
        bestScore[end] = f32 ? Math.fround(cand) : cand;
        startsAt[end] = from;
        bestId[end] = id;
      }
      if (!hasSingle && end - from === mblen) hasSingle = true;
    });
    if (!hasSingle) {
      const end = pos + mblen;
      const cand = f32 ? Math.fround(s.unkScore + till) : s.unkScore + till;
      if (startsAt[end] === -1 || cand > bestScore[end]!) {
        bestScore[end] = cand;
        startsAt[end] = from;
        bestId[end] = s.unkId;
      }
    }
    pos += mblen;
  }
  const out: Segment[] = [];
  let end = size;
  while (end > 0) {
    const start = startsAt[end]!;
    out.push({ start, end, id: bestId[end]! });
    end = start;
  }
  out.reverse();
  return out;
}
