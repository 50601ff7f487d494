/**
 * Errors of the sampler layer (SORA8201-SORA8219). Every user-facing problem (bad step count, non-finite guidance,
 * a noise file that lacks a step or has the wrong shape, a denoiser that returns the wrong shape, cancellation)
 * is a SamplingError with a stable code, a message saying what and where, and a hint saying how to fix it.
 */

import type { Code } from '../../core/codes.ts';
import { SoracError } from '../../core/errors.ts';

/** The sampler layer's codes (registered in core/codes.ts, section "Pipelines and generation"). */
export type SamplingCode = Extract<Code, `SORA82${string}` | `SORA83${string}`>;

/** A SoracError raised by the samplers; `hint` is always given. */
export class SamplingError extends SoracError {
  constructor(code: SamplingCode, message: string, hint: string) {
    super(code, message, { hint });
    this.name = 'SamplingError';
  }
}
