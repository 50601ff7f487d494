/**
 * Typed errors for the text side of `sorac generate` (tokenizer files, prompt encoding, prompt
 * cleaning). Every user-facing problem is a TextError with a stable SORA81xx code, a one-line
 * message that says what and where, a hint that says how to fix it, and — for "not found" — the
 * list of every place that was looked at. Bad input never surfaces as a stack trace.
 */

import type { Code } from '../../core/codes.ts';
import { SoracError } from '../../core/errors.ts';

/** The text layer's codes (registered in core/codes.ts, section "Pipelines and generation"). */
export type TextCode = Extract<Code, `SORA81${string}`>;

/** A SoracError of the text layer (positional hint, looked, path for brevity at the many throw sites). */
export class TextError extends SoracError {
  constructor(code: TextCode, message: string, hint?: string, looked: readonly string[] = [], path?: string) {
    super(code, message, { ...(hint !== undefined ? { hint } : {}), looked, ...(path !== undefined ? { path } : {}) });
    this.name = 'TextError';
  }
}
