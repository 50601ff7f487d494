/** Shared helpers for keymap tests: compile an example with a config and read its keymap. */
import { expect } from 'vitest';
import type { CompiledModel } from '../../compiler/compile.ts';
import type { Keymap } from '../../core/keymap.ts';
import { compileFile } from './model.ts';

/** Compile `file` with config values; diagnostics are left to the caller. */
export function buildExample(file: string, values: Record<string, unknown>): CompiledModel {
  return compileFile(file, { values });
}

/** The keymap of `file` at a config, asserting it compiles without errors. */
export function exampleKeymap(file: string, values: Record<string, unknown> = {}): Keymap {
  const m = buildExample(file, values);
  expect(m.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.code} ${d.message}`)).toEqual([]);
  return m.keymap!;
}

export const shapes = (km: Keymap) => Object.fromEntries(Object.entries(km.tensors).map(([k, e]) => [k, [...e.shape]]));
export const kinds = (km: Keymap) => Object.fromEntries(Object.entries(km.tensors).map(([k, e]) => [k, e.kind]));
