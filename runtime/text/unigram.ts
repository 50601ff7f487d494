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

/** A byte trie over piece strings: commonPrefix walks yield (end, id) shortest first. */
export class PieceTrie {
  private readonly edges = new Map<number, number>();
  private values: Int32Array = new Int32Array(1024).fill(-1);
  private nodes = 1;

  insert(bytes: Uint8Array, id: number): void {
    let node = 0;
    for (let i = 0; i < bytes.length; i++) {
      const key = node * 256 + bytes[i]!;
      let next = this.edges.get(key);
      if (next === undefined) {
        next = this.nodes++;
        this.edges.set(key, next);
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
      const next = this.edges.get(node * 256 + bytes[i]!);
      if (next === undefined) return;
      node = next;
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
