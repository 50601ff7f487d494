/**
 * Typed errors for migrations: every user-facing problem is a MigrateError with a stable SORA6xxx
 * code (docs/diagnostics.md, "Migrations"), a one-line message and a hint.
 */

export const MIGRATE_CODES = {
  SORA6001: 'invalid migration plan, op or key pattern',
  SORA6002: 'an op does not fit the checkpoint',
  SORA6003: 'migration is not invertible (--reverse)',
  SORA6004: 'key collision',
  SORA6005: 'unknown built-in migration or bad parameter',
  SORA6006: 'migration script failed',
  SORA6007: 'output path refused',
  SORA6008: 'cannot write the output',
  SORA6009: 'op matched no key (warning)',
  SORA6010: 'not exactly reversible on this checkpoint (warning)',
} as const;

export type MigrateCode = keyof typeof MIGRATE_CODES;

export class MigrateError extends Error {
  constructor(
    public readonly code: MigrateCode,
    message: string,
    public readonly hint?: string,
  ) {
    super(message);
    this.name = 'MigrateError';
  }

  toJSON() {
    return { code: this.code, message: this.message, hint: this.hint };
  }
}
