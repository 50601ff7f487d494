/** Translate runtime checkpoint errors into CLI user errors (message + hint, no stack). */
import { UserError } from './io.ts';

export function weightsErrorToUser(e: unknown): Error {
  if (e instanceof UserError) return e;
  const err = e as { name?: string; code?: string; message?: string; hint?: string; looked?: readonly string[] };
  if (err && typeof err === 'object' && (err.name === 'WeightsError' || err.name === 'SafetensorsError' || err.name === 'RunError' || err.name === 'ConversionError' || err.name === 'SafetensorsWriteError')) {
    const looked = err.looked?.length ? `\n  looked in:\n${err.looked.map((l) => `    - ${l}`).join('\n')}` : '';
    return new UserError(`${err.code ? err.code + ': ' : ''}${err.message ?? String(e)}${looked}`, err.hint);
  }
  return e as Error;
}
