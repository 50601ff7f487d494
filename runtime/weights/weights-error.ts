/**
 * Typed errors for everything that loads weights. Every user-facing problem with a checkpoint is a
 * WeightsError with a stable SORA5xxx code (documented in docs/diagnostics.md, "Checkpoints"), a
 * one-line message, a hint that says how to fix it, and — for resolution failures — the list of
 * every place that was looked at.
 */

export const WEIGHTS_CODES = {
  SORA5001: 'weights not found',
  SORA5002: 'corrupt or invalid safetensors file',
  SORA5003: 'refused pickle content (global or opcode outside the allow-list)',
  SORA5004: 'legacy (non-zip) PyTorch file',
  SORA5005: 'corrupt or unsupported PyTorch zip archive',
  SORA5006: 'invalid sharded index',
  SORA5007: 'ambiguous weights location',
  SORA5008: 'hub cache problem (revision missing, incomplete or corrupt blob)',
  SORA5009: 'unsupported dtype or storage type',
  SORA5010: 'checkpoint does not match the model (load report)',
  SORA5011: 'tensor defined twice',
  SORA5012: 'I/O error',
  SORA5013: 'no tensors found',
} as const;

export type WeightsCode = keyof typeof WEIGHTS_CODES;
/** Other runtime modules may raise their own SORA5xxx codes (documented in docs/diagnostics.md) with this class. */
export type AnyWeightsCode = WeightsCode | `SORA5${number}`;

export class WeightsError extends Error {
  constructor(
    public readonly code: AnyWeightsCode,
    message: string,
    public readonly hint?: string,
    /** Every place looked at, in search order (resolution failures). */
    public readonly looked: readonly string[] = [],
    public readonly path?: string,
  ) {
    super(message);
    this.name = 'WeightsError';
  }

  /** Plain-text rendering for the CLI: message, looked-at list, hint. */
  render(): string {
    let s = `${this.code}: ${this.message}\n`;
    if (this.looked.length) {
      s += '  looked in:\n';
      for (const l of this.looked) s += `    - ${l}\n`;
    }
    if (this.hint) s += `  hint: ${this.hint.split('\n').join('\n        ')}\n`;
    return s;
  }

  toJSON() {
    return { code: this.code, message: this.message, hint: this.hint, looked: this.looked, path: this.path };
  }
}
