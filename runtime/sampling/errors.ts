/**
 * Errors of the sampler layer (SORA8201-SORA8219). Every user-facing problem (bad step count, non-finite guidance,
 * a noise file that lacks a step or has the wrong shape, a denoiser that returns the wrong shape, cancellation)
 * is a SamplingError with a stable code, a message saying what and where, and a hint saying how to fix it.
 */

export const SAMPLING_CODES = {
  SORA8201: 'sampling steps out of range',
  SORA8202: 'guidance scale not finite',
  SORA8203: 'noise source lacks a tensor',
  SORA8204: 'noise shape does not match the latent',
  SORA8205: 'noise tensor has an unsupported dtype',
  SORA8206: 'noise file unreadable',
  SORA8207: 'latent shape invalid',
  SORA8208: 'denoiser output has the wrong shape',
  SORA8209: 'conditioning input has the wrong shape or value',
  SORA8210: 'unknown respacing string',
  SORA8211: 'respacing cannot be divided as asked',
  SORA8212: 'unknown beta schedule',
  SORA8213: 'latent mask has the wrong shape or values',
  SORA8214: 'sampling cancelled',
  SORA8215: 'unsupported sampler option',
  SORA8216: 'invalid video request',
  SORA8217: 'invalid seed',
  SORA8218: 'cfg channel out of range',
  SORA8219: 'unknown release or sampler kind',
} as const;
export type SamplingCode = keyof typeof SAMPLING_CODES;

export class SamplingError extends Error {
  constructor(
    public readonly code: SamplingCode,
    message: string,
    public readonly hint: string,
  ) {
    super(message);
    this.name = 'SamplingError';
  }

  toJSON() {
    return { code: this.code, message: this.message, hint: this.hint };
  }
}
