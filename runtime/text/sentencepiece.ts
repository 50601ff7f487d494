/**
 * A SentencePiece `spiece.model` reader and unigram encoder in TypeScript, so `sorac generate` can
 * turn a prompt into T5 input ids without Python or a native library.
 *
 * The model file is a protobuf `sentencepiece.ModelProto` (src/sentencepiece_model.proto); it is
 * decoded with protobufjs from a minimal schema that names only the fields read here (unknown
 * fields, self-test data and extensions are skipped by the decoder).
 *
 * Encoding follows the real library, file by file:
 * - src/model_interface.cc InitializePieces: NORMAL/USER_DEFINED/UNUSED pieces are matchable,
 *   CONTROL/UNKNOWN/BYTE pieces are only reachable by id; exactly one UNKNOWN; 256 BYTE pieces when
 *   trainer_spec.byte_fallback; USER_DEFINED pieces bypass normalization (PrefixMatcher).
 * - src/normalizer.cc Normalize/NormalizePrefix: precompiled charsmap (longest rule), malformed
 *   UTF-8 -> U+FFFD one byte at a time, remove_extra_whitespaces (leading, repeated, trailing),
 *   escape_whitespaces (' ' -> U+2581 '▁'), add_dummy_prefix, treat_whitespace_as_suffix.
 * - src/unigram_model.cc Model::EncodeOptimized (see unigram.ts) with min/max score over NORMAL
 *   pieces, unk score = min - 10.
 * - src/sentencepiece_processor.cc PopulateSentencePieceText: a run of unknown pieces is merged
 *   into one <unk>; with byte_fallback an unknown piece becomes its UTF-8 bytes `<0xXX>`.
 * Only the unigram model type is supported (T5, mT5, ALBERT, XLNet, ...).
 */
import { readFileSync } from 'node:fs';
import protobuf from 'protobufjs';
import { PrecompiledCharsmap } from './charsmap.ts';
import { TextError } from './errors.ts';
import { PieceTrie, utf8, viterbi, type UnigramScoring } from './unigram.ts';

/** ModelProto.SentencePiece.Type (sentencepiece_model.proto). */
export const PieceType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;
export type PieceTypeValue = (typeof PieceType)[keyof typeof PieceType];

export interface SpPiece {
  readonly piece: string;
  /** float32 value as stored. */
  readonly score: number;
  readonly type: number;
}

export interface NormalizerSpec {
  readonly name: string;
  readonly precompiledCharsmap: Uint8Array;
  readonly addDummyPrefix: boolean;
  readonly removeExtraWhitespaces: boolean;
  readonly escapeWhitespaces: boolean;
}

export interface TrainerSpecInfo {
  readonly modelType: number;
  readonly vocabSize: number;
  readonly byteFallback: boolean;
  readonly treatWhitespaceAsSuffix: boolean;
  readonly unkId: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly unkSurface: string;
}

export interface SpEncoding {
  readonly ids: number[];
  readonly pieces: string[];
}

// Minimal proto2 schema: field numbers and defaults from src/sentencepiece_model.proto. Enums are
// read as int32 (same wire type), so unknown enum values stay visible as numbers.
const SCHEMA = {
  nested: {
    sentencepiece: {
      nested: {
        TrainerSpec: {
          fields: {
            modelType: { type: 'int32', id: 3, options: { default: 1 } },
            vocabSize: { type: 'int32', id: 4, options: { default: 8000 } },
            treatWhitespaceAsSuffix: { type: 'bool', id: 24, options: { default: false } },
            byteFallback: { type: 'bool', id: 35, options: { default: false } },
            unkId: { type: 'int32', id: 40, options: { default: 0 } },
            bosId: { type: 'int32', id: 41, options: { default: 1 } },
            eosId: { type: 'int32', id: 42, options: { default: 2 } },
            padId: { type: 'int32', id: 43, options: { default: -1 } },
            unkSurface: { type: 'string', id: 44, options: { default: ' \u2047 ' } },
          },
        },
        NormalizerSpec: {
          fields: {
            name: { type: 'string', id: 1 },
            precompiledCharsmap: { type: 'bytes', id: 2 },
            addDummyPrefix: { type: 'bool', id: 3, options: { default: true } },
            removeExtraWhitespaces: { type: 'bool', id: 4, options: { default: true } },
            escapeWhitespaces: { type: 'bool', id: 5, options: { default: true } },
          },
        },
        SentencePiece: {
          fields: {
            piece: { type: 'string', id: 1 },
            score: { type: 'float', id: 2 },
            type: { type: 'int32', id: 3, options: { default: 1 } },
          },
        },
        ModelProto: {
          fields: {
            pieces: { rule: 'repeated', type: 'SentencePiece', id: 1 },
            trainerSpec: { type: 'TrainerSpec', id: 2 },
            normalizerSpec: { type: 'NormalizerSpec', id: 3 },
          },
        },
      },
    },
  },
};

let modelType: protobuf.Type | undefined;
function modelProtoType(): protobuf.Type {
  modelType ??= protobuf.Root.fromJSON(SCHEMA).lookupType('sentencepiece.ModelProto');
  return modelType;
}

interface RawModel {
  pieces?: { piece?: string; score?: number; type?: number }[];
  trainerSpec?: Record<string, unknown>;
  normalizerSpec?: Record<string, unknown>;
}

const SPACE = new Uint8Array([0xe2, 0x96, 0x81]); // U+2581 '▁'
const REPLACEMENT = new Uint8Array([0xef, 0xbf, 0xbd]); // U+FFFD
const FLT_MIN = 1.1754943508222875e-38;
const UNK_PENALTY = 10;

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { ignoreBOM: true });

/** A growable byte buffer (the normalizer output). */
class Bytes {
  buf: Uint8Array;
  len = 0;
  constructor(cap: number) {
    this.buf = new Uint8Array(Math.max(16, cap));
  }
  push(b: Uint8Array): void {
    if (this.len + b.length > this.buf.length) {
      const g = new Uint8Array(Math.max(this.buf.length * 2, this.len + b.length));
      g.set(this.buf.subarray(0, this.len));
      this.buf = g;
    }
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  endsWith(b: Uint8Array): boolean {
    if (this.len < b.length) return false;
    for (let i = 0; i < b.length; i++) if (this.buf[this.len - b.length + i] !== b[i]) return false;
    return true;
  }
  view(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

/** util.cc DecodeUTF8 + util.h IsValidDecodeUTF8: length of a valid character at pos, or 0. */
function validCharLen(b: Uint8Array, pos: number, end: number): number {
  const c0 = b[pos]!;
  if (c0 < 0x80) return 1;
  const len = end - pos;
  const trail = (x: number | undefined) => x !== undefined && (x & 0xc0) === 0x80;
  if (len >= 2 && (c0 & 0xe0) === 0xc0) {
    const cp = ((c0 & 0x1f) << 6) | (b[pos + 1]! & 0x3f);
    if (trail(b[pos + 1]) && cp >= 0x80) return 2;
  } else if (len >= 3 && (c0 & 0xf0) === 0xe0) {
    const cp = ((c0 & 0x0f) << 12) | ((b[pos + 1]! & 0x3f) << 6) | (b[pos + 2]! & 0x3f);
    if (trail(b[pos + 1]) && trail(b[pos + 2]) && cp >= 0x800 && (cp < 0xd800 || cp >= 0xe000)) return 3;
  } else if (len >= 4 && (c0 & 0xf8) === 0xf0) {
    const cp = ((c0 & 0x07) << 18) | ((b[pos + 1]! & 0x3f) << 12) | ((b[pos + 2]! & 0x3f) << 6) | (b[pos + 3]! & 0x3f);
    if (trail(b[pos + 1]) && trail(b[pos + 2]) && trail(b[pos + 3]) && cp >= 0x10000 && cp <= 0x10ffff) return 4;
  }
  return 0;
}

export class SentencePieceProcessor {
  readonly pieces: readonly SpPiece[];
  readonly trainerSpec: TrainerSpecInfo;
  readonly normalizerSpec: NormalizerSpec;
  /** Where the model came from (file path or a label), for messages. */
  readonly source: string;

  private readonly charsmap: PrecompiledCharsmap | null;
  private readonly userDefined: PieceTrie | null;
  private readonly scoring: UnigramScoring;
  private readonly pieceIds = new Map<string, number>();
  private readonly kinds: Uint8Array;
  private readonly byteIds: Int32Array;
  readonly unkId: number;

  constructor(raw: RawModel, source: string) {
    this.source = source;
    const ts = raw.trainerSpec ?? {};
    const ns = raw.normalizerSpec ?? {};
    const num = (v: unknown, d: number) => (typeof v === 'number' ? v : d);
    const bool = (v: unknown, d: boolean) => (typeof v === 'boolean' ? v : d);
    const str = (v: unknown, d: string) => (typeof v === 'string' ? v : d);
    this.trainerSpec = {
      modelType: num(ts.modelType, 1),
      vocabSize: num(ts.vocabSize, 8000),
      byteFallback: bool(ts.byteFallback, false),
      treatWhitespaceAsSuffix: bool(ts.treatWhitespaceAsSuffix, false),
      unkId: num(ts.unkId, 0),
      bosId: num(ts.bosId, 1),
      eosId: num(ts.eosId, 2),
      padId: num(ts.padId, -1),
      unkSurface: str(ts.unkSurface, ' \u2047 '),
    };
    const cm = ns.precompiledCharsmap instanceof Uint8Array ? ns.precompiledCharsmap : new Uint8Array(0);
    this.normalizerSpec = {
      name: str(ns.name, ''),
      precompiledCharsmap: cm,
      addDummyPrefix: bool(ns.addDummyPrefix, true),
      removeExtraWhitespaces: bool(ns.removeExtraWhitespaces, true),
      escapeWhitespaces: bool(ns.escapeWhitespaces, true),
    };
    const mt = this.trainerSpec.modelType;
    if (mt !== 1) {
      const name = { 2: 'BPE', 3: 'WORD', 4: 'CHAR' }[mt] ?? `type ${mt}`;
      throw new TextError('SORA8103', `${source}: SentencePiece model type ${name} is not supported (only UNIGRAM)`, 'T5 tokenizers are unigram models; use the spiece.model that belongs to the T5 text encoder', [], source);
    }
    const pieces = (raw.pieces ?? []).map((p) => ({ piece: p.piece ?? '', score: p.score ?? 0, type: p.type ?? PieceType.NORMAL }));
    if (pieces.length === 0) {
      throw new TextError('SORA8102', `${source}: not a SentencePiece model (no pieces found)`, 'pass the spiece.model file of the T5 tokenizer (a protobuf ModelProto), not another file', [], source);
    }
    this.pieces = pieces;
    this.kinds = new Uint8Array(pieces.length);
    this.byteIds = new Int32Array(256).fill(-1);
    const trie = new PieceTrie();
    let udTrie: PieceTrie | null = null;
    let unkId = -1;
    let minScore = Number.MAX_VALUE;
    let maxScore = FLT_MIN;
    let minSet = false;
    const bad = (why: string) => new TextError('SORA8104', `${source}: ${why}`, 'the tokenizer model is inconsistent: download spiece.model again or use the one shipped with the text encoder', [], source);
    for (let i = 0; i < pieces.length; i++) {
      const p = pieces[i]!;
      if (p.piece === '') throw bad(`piece ${i} is empty (piece must not be empty)`);
      if (p.type < 1 || p.type > 6) throw bad(`piece ${i} ${JSON.stringify(p.piece)} has unknown type ${p.type}`);
      this.kinds[i] = p.type;
      if (this.pieceIds.has(p.piece)) throw bad(`${JSON.stringify(p.piece)} is already defined (ids ${this.pieceIds.get(p.piece)} and ${i})`);
      this.pieceIds.set(p.piece, i);
      const matchable = p.type === PieceType.NORMAL || p.type === PieceType.USER_DEFINED || p.type === PieceType.UNUSED;
      const bytes = utf8(p.piece);
      if (matchable) trie.insert(bytes, i);
      if (p.type === PieceType.USER_DEFINED) (udTrie ??= new PieceTrie()).insert(bytes, i);
      if (p.type === PieceType.NORMAL) {
        if (!minSet || p.score < minScore) minScore = p.score;
        minSet = true;
        maxScore = Math.max(maxScore, p.score);
      }
      if (p.type === PieceType.UNKNOWN) {
        if (unkId >= 0) throw bad(`unk is already defined (ids ${unkId} and ${i})`);
        unkId = i;
      }
      if (p.type === PieceType.BYTE) {
        if (!this.trainerSpec.byteFallback) throw bad(`byte piece ${p.piece} is found although \`byte_fallback\` is false`);
        const m = /^<0x([0-9A-F]{2})>$/.exec(p.piece);
        if (!m) throw bad(`byte piece ${p.piece} is invalid`);
        this.byteIds[parseInt(m[1]!, 16)] = i;
      }
    }
    if (unkId < 0) throw bad('unk is not defined');
    if (this.trainerSpec.byteFallback && this.byteIds.some((v) => v < 0)) throw bad('there are not 256 byte pieces although `byte_fallback` is true');
    this.unkId = unkId;
    this.userDefined = udTrie;
    this.charsmap = cm.length > 0 ? new PrecompiledCharsmap(cm, source) : null;
    if (!minSet) minScore = Math.fround(3.4028234663852886e38); // FLT_MAX, no NORMAL piece
    const scores = new Float64Array(pieces.length);
    const ud = new Uint8Array(pieces.length);
    const unused = new Uint8Array(pieces.length);
    for (let i = 0; i < pieces.length; i++) {
      scores[i] = Math.fround(pieces[i]!.score);
      ud[i] = pieces[i]!.type === PieceType.USER_DEFINED ? 1 : 0;
      unused[i] = pieces[i]!.type === PieceType.UNUSED ? 1 : 0;
    }
    this.scoring = {
      mode: 'spm',
      trie,
      scores,
      userDefined: ud,
      unused,
      maxScore: Math.fround(maxScore),
      unkScore: Math.fround(Math.fround(minScore) - UNK_PENALTY),
      unkId,
    };
  }

  get size(): number {
    return this.pieces.length;
  }

  /** SentencePieceProcessor::PieceToId: any piece (incl. control/byte), else the unk id. */
  pieceToId(piece: string): number {
    return this.pieceIds.get(piece) ?? this.unkId;
  }

  idToPiece(id: number): string {
    const p = this.pieces[id];
    if (!p) throw new RangeError(`id ${id} is outside the vocabulary (0..${this.pieces.length - 1})`);
    return p.piece;
  }

  isControl(id: number): boolean {
    return this.kinds[id] === PieceType.CONTROL;
  }
  isUnknown(id: number): boolean {
    return this.kinds[id] === PieceType.UNKNOWN;
  }
  isByte(id: number): boolean {
    return this.kinds[id] === PieceType.BYTE;
  }

  /** Normalized UTF-8 bytes of `text` (normalizer.cc Normalize), with '▁' for spaces when escaping. */
  normalizeBytes(input: Uint8Array): Uint8Array {
    const spec = this.normalizerSpec;
    const n = input.length;
    if (n === 0) return new Uint8Array(0);
    let pos = 0;
    if (spec.removeExtraWhitespaces) {
      while (pos < n) {
        const [sp, consumed] = this.normalizePrefix(input, pos);
        if (!(sp.length === 1 && sp[0] === 0x20)) break;
        pos += consumed;
      }
    }
    if (pos >= n) return new Uint8Array(0);
    const out = new Bytes((n - pos) * 3);
    const ws = spec.escapeWhitespaces ? SPACE : new Uint8Array([0x20]);
    const suffix = this.trainerSpec.treatWhitespaceAsSuffix;
    if (!suffix && spec.addDummyPrefix) out.push(ws);
    let isPrevSpace = spec.removeExtraWhitespaces;
    while (pos < n) {
      const [sp0, consumed] = this.normalizePrefix(input, pos);
      let s = 0;
      while (isPrevSpace && s < sp0.length && sp0[s] === 0x20) s++;
      if (s < sp0.length) {
        let runStart = s;
        for (let k = s; k < sp0.length; k++) {
          if (spec.escapeWhitespaces && sp0[k] === 0x20) {
            if (k > runStart) out.push(sp0.subarray(runStart, k));
            out.push(SPACE);
            runStart = k + 1;
          }
        }
        if (runStart < sp0.length) out.push(sp0.subarray(runStart));
        isPrevSpace = sp0[sp0.length - 1] === 0x20;
      }
      pos += consumed;
      if (!spec.removeExtraWhitespaces) isPrevSpace = false;
    }
    if (spec.removeExtraWhitespaces) {
      while (out.endsWith(ws)) out.len -= ws.length;
    }
    if (suffix && spec.addDummyPrefix) out.push(ws);
    return out.view().slice();
  }

  /** The normalized form of `text` as a string ('▁' marks spaces when escape_whitespaces). */
  normalize(text: string): string {
    return dec.decode(this.normalizeBytes(enc.encode(text)));
  }

  /** normalizer.cc NormalizePrefix: (replacement bytes, input bytes consumed). */
  private normalizePrefix(input: Uint8Array, pos: number): [Uint8Array, number] {
    const n = input.length;
    if (this.userDefined) {
      const len = this.userDefined.longest(input, pos, n);
      if (len > 0) return [input.subarray(pos, pos + len), len];
    }
    if (this.charsmap) {
      const rule = this.charsmap.longestRule(input, pos, n);
      if (rule) return [rule.replacement, rule.length];
    }
    const len = validCharLen(input, pos, n);
    if (len === 0) return [REPLACEMENT, 1];
    return [input.subarray(pos, pos + len), len];
  }

  /**
   * SentencePieceProcessor::Encode: ids and pieces of `text`. Unknown runs are merged into one
   * <unk> piece (its text is the unknown surface); with byte_fallback they become byte pieces.
   */
  encode(text: string): SpEncoding {
    const norm = this.normalizeBytes(enc.encode(text));
    const segs = viterbi(norm, this.scoring);
    const ids: number[] = [];
    const pieces: string[] = [];
    let prevUnk = false;
    for (const s of segs) {
      const isUnk = s.id === this.unkId;
      if (isUnk && this.trainerSpec.byteFallback) {
        for (let b = s.start; b < s.end; b++) {
          const id = this.byteIds[norm[b]!]!;
          ids.push(id);
          pieces.push(this.pieces[id]!.piece);
        }
      } else if (isUnk && prevUnk) {
        pieces[pieces.length - 1] += dec.decode(norm.subarray(s.start, s.end));
      } else {
        ids.push(s.id);
        pieces.push(dec.decode(norm.subarray(s.start, s.end)));
      }
      prevUnk = isUnk;
    }
    return { ids, pieces };
  }

  encodeIds(text: string): number[] {
    return this.encode(text).ids;
  }

  /**
   * SentencePieceProcessor::Decode (without a denormalizer): control pieces vanish, <unk> becomes
   * the unk surface, byte pieces are reassembled into UTF-8, '▁' becomes ' ', and the leading
   * space of the first piece (the dummy prefix) is dropped.
   */
  decode(ids: readonly number[]): string {
    const spec = this.normalizerSpec;
    let text = '';
    let bytes: number[] = [];
    let isBosWs = true;
    let bosWsSeen = false;
    const flush = () => {
      if (bytes.length === 0) return;
      const b = Uint8Array.from(bytes);
      let o = 0;
      while (o < b.length) {
        const l = validCharLen(b, o, b.length);
        if (l === 0) {
          text += '\ufffd';
          o += 1;
        } else {
          text += dec.decode(b.subarray(o, o + l));
          o += l;
        }
      }
      bytes = [];
    };
    for (const id of ids) {
      const p = this.idToPiece(id);
      if (this.isByte(id)) {
        bytes.push(parseInt(p.slice(3, 5), 16));
        continue;
      }
      flush();
      if (bosWsSeen || text.length > 0) isBosWs = false;
      let piece = p;
      let hasBosWs = false;
      if (this.isControl(id)) {
        piece = '';
      } else if (this.isUnknown(id)) {
        piece = this.trainerSpec.unkSurface;
      } else if (isBosWs && (spec.addDummyPrefix || spec.removeExtraWhitespaces)) {
        if (piece.startsWith('\u2581')) {
          piece = piece.slice(1);
          hasBosWs = !spec.removeExtraWhitespaces;
        }
      }
      bosWsSeen = hasBosWs;
      text += this.isUnknown(id) ? piece : piece.replaceAll('\u2581', ' ');
    }
    flush();
    return text;
  }
}

/** Parse the bytes of a `.model` file. `source` names it in errors. */
export function loadSentencePiece(bytes: Uint8Array, source = 'spiece.model'): SentencePieceProcessor {
  let raw: RawModel;
  try {
    const T = modelProtoType();
    const msg = T.decode(bytes);
    raw = T.toObject(msg, { defaults: false }) as RawModel;
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new TextError('SORA8102', `${source}: not a valid SentencePiece model (${why}; ${bytes.length} bytes)`, 'the file is truncated or not a spiece.model: download it again (it is a protobuf ModelProto, ~792 kB for T5)', [], source);
  }
  return new SentencePieceProcessor(raw, source);
}

/** Read and parse a `.model` file from disk. */
export function readSentencePiece(path: string): SentencePieceProcessor {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new TextError('SORA8110', `cannot read ${path}: ${why}`, 'check the path and its permissions', [], path);
  }
  return loadSentencePiece(bytes, path);
}

