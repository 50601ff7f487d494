/** Shared fixture access for the text tests (tests/fixtures/tokenizer, made by make_fixtures.py). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const FIX = join(import.meta.dirname, '../fixtures/tokenizer');

export function fixtureJson<T>(name: string): T {
  return JSON.parse(readFileSync(join(FIX, name), 'utf8')) as T;
}

export interface Corpus {
  names: string[];
  texts: string[];
}
