/**
 * SentencePiece's precompiled normalization charsmap: `<u32 trie size><Darts double array><strings>`.
 *
 * The blob is what a `.model` file stores in `normalizer_spec.precompiled_charsmap` (and what a
 * Hugging Face tokenizer.json stores base64-encoded in a `Precompiled` normalizer). The double array
 * maps UTF-8 byte sequences to an offset into the NUL-separated replacement strings that follow it.
 *
 * Read exactly as sentencepiece reads it: src/normalizer.cc (DecodePrecompiledCharsMap, Init,
 * NormalizePrefix: the LONGEST rule wins) and third_party/darts_clone/darts.h (DoubleArrayUnit
 * bit layout, commonPrefixSearch). The Hugging Face `tokenizers` Precompiled normalizer (crate
 * spm_precompiled) reads the same blob but uses the FIRST (shortest) matching rule on whole
 * grapheme clusters; `firstRule` serves that reader.
 */
import { TextError } from './errors.ts';

/** A Darts-clone double array (darts.h): read-only, as stored in the blob. */
export class DoubleArray {
  constructor(private readonly units: Uint32Array) {}

  get size(): number {
    return this.units.length;
  }

  /**
   * darts.h DoubleArrayImpl::commonPrefixSearch over key[start, end): calls `hit(value, length)` for
   * every key in the trie that is a prefix, shortest first. A corrupt array (an index past the end)
   * ends the search instead of reading out of bounds.
   */
  commonPrefixSearch(key: Uint8Array, start: number, end: number, hit: (value: number, length: number) => void): void {
    const u = this.units;
    if (u.length === 0) return;
    let unit = u[0]!;
    let pos = offsetOf(unit);
    for (let i = start; i < end; i++) {
      const c = key[i]!;
      pos ^= c;
      if (pos >= u.length) return;
      unit = u[pos]!;
      if (labelOf(unit) !== c) return;
      pos ^= offsetOf(unit);
      if ((unit >>> 8) & 1) {
        if (pos >= u.length) return;
        hit(u[pos]! & 0x7fffffff, i - start + 1);
      }
    }
  }
}

// DoubleArrayUnit (darts.h): label() keeps the MSB so a leaf unit never equals a byte label.
function labelOf(unit: number): number {
  return (unit & 0x800000ff) >>> 0;
}
function offsetOf(unit: number): number {
  return (unit >>> 10) << ((unit & (1 << 9)) >>> 6);
}

export class PrecompiledCharsmap {
  private readonly trie: DoubleArray;
  private readonly strings: Uint8Array;
  private readonly byteCache = new Map<number, Uint8Array>();
  private readonly textCache = new Map<number, string>();

  /** normalizer.cc DecodePrecompiledCharsMap (little-endian hosts). */
  constructor(blob: Uint8Array, where: string) {
    const broken = (why: string) =>
      new TextError('SORA8105', `${where}: the precompiled normalization charsmap is broken (${why})`, 'the tokenizer file is corrupt or truncated: download it again', [], where);
    if (blob.byteLength <= 4) throw broken('Blob for normalization rule is broken.');
    const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    const trieSize = dv.getUint32(0, true);
    if (trieSize >= blob.byteLength) throw broken('Trie data size exceeds the input blob size.');
    const n = Math.floor(trieSize / 4);
    const units = new Uint32Array(n);
    for (let i = 0; i < n; i++) units[i] = dv.getUint32(4 + i * 4, true);
    this.trie = new DoubleArray(units);
    this.strings = blob.subarray(4 + trieSize);
  }

  /** normalizer.cc NormalizePrefix: the longest rule matching input[pos, end), or null. */
  longestRule(input: Uint8Array, pos: number, end: number): { length: number; replacement: Uint8Array } | null {
    let bestLen = 0;
    let bestVal = 0;
    this.trie.commonPrefixSearch(input, pos, end, (value, length) => {
      if (bestLen === 0 || length > bestLen) {
        bestLen = length;
        bestVal = value;
      }
    });
    if (bestLen === 0) return null;
    return { length: bestLen, replacement: this.replacementBytes(bestVal) };
  }

  /** spm_precompiled Precompiled::transform: the first (shortest) rule that is a prefix of `chunk`. */
  firstRule(chunk: Uint8Array): string | null {
    let found = -1;
    this.trie.commonPrefixSearch(chunk, 0, chunk.length, (value) => {
      if (found < 0) found = value;
    });
    if (found < 0) return null;
    let s = this.textCache.get(found);
    if (s === undefined) {
      s = new TextDecoder('utf-8', { ignoreBOM: true }).decode(this.replacementBytes(found));
      this.textCache.set(found, s);
    }
    return s;
  }

  /** The NUL-terminated replacement at `offset` (normalizer.cc reads it as a C string). */
  private replacementBytes(offset: number): Uint8Array {
    let b = this.byteCache.get(offset);
    if (b === undefined) {
      let end = offset;
      while (end < this.strings.length && this.strings[end] !== 0) end++;
      b = this.strings.subarray(Math.min(offset, this.strings.length), end);
      this.byteCache.set(offset, b);
    }
    return b;
  }
}
