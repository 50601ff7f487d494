/**
 * Typed errors for the text side of `sorac generate` (tokenizer files, prompt encoding, prompt
 * cleaning). Every user-facing problem is a TextError with a stable SORA81xx code, a one-line
 * message that says what and where, a hint that says how to fix it, and — for "not found" — the
 * list of every place that was looked at. Bad input never surfaces as a stack trace.
 */

export const TEXT_CODES = {
  SORA8101: 'tokenizer files not found',
  SORA8102: 'invalid or truncated spiece.model (not a SentencePiece ModelProto)',
  SORA8103: 'unsupported SentencePiece model (model type or option)',
  SORA8104: 'inconsistent SentencePiece vocabulary (duplicate piece, no <unk>, byte pieces)',
  SORA8105: 'invalid precompiled normalization charsmap',
  SORA8106: 'invalid tokenizer.json',
  SORA8107: 'unsupported tokenizer.json component',
  SORA8108: 'bad encode options',
  SORA8109: 'prompt is not a string',
  SORA8110: 'cannot read a tokenizer file',
  SORA8111: 'unknown Open-Sora release for prompt cleaning',
  SORA8112: 'prompt cannot be cleaned (Open-Sora\'s cleaner raises on it)',
} as const;

export type TextCode = keyof typeof TEXT_CODES;

export class TextError extends Error {
  constructor(
    public readonly code: TextCode,
    message: string,
    public readonly hint?: string,
    /** Every place looked at, in search order (resolution failures). */
    public readonly looked: readonly string[] = [],
    public readonly path?: string,
  ) {
    super(message);
    this.name = 'TextError';
  }

  /** Plain-text rendering for the CLI: code, message, looked-at list, hint. */
  render(): string {
    let s = `${this.code}: ${this.message}\n`;
    if (this.looked.length) {
      s += '  looked in:\n';
      for (const l of this.looked) s += `    - ${l}\n`;
    }
    if (this.hint) s += `  hint: ${this.hint}\n`;
    return s;
  }

  toJSON() {
    return { code: this.code, message: this.message, hint: this.hint, looked: this.looked, path: this.path };
  }
}
