/**
 * Each reader as the CLI drives it, for the corpus and the fuzzers: open and read every tensor
 * (`sorac inspect` / `check --weights` / `run`), verify (`sorac verify`), check a `.sora` source,
 * a config file or `--set` values. Resolves on success, throws what the reader throws.
 */
import { openWeights, verifyWeights } from '../../api/weights.ts';
import { type Case } from './make-corpus.ts';

export async function readAllWeights(path: string): Promise<void> {
  const s = await openWeights(path);
  try {
    for (const t of s.tensors.values()) await t.read();
  } finally {
    await s.close();
  }
}

export async function runCase(c: Case): Promise<void> {
  switch (c.reader) {
    case 'weights':
      return readAllWeights(c.input);
    case 'inspect': {
      const s = await openWeights(c.input);
      await s.close();
      return;
    }
    case 'verify': {
      await verifyWeights(c.input);
      return;
    }
    default:
      throw new Error(`no reader for ${c.reader}`);
  }
}
