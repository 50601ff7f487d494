import { describe, expect, it } from 'vitest';
import { main } from '../cli/main.ts';
import { memoryIO } from '../cli/io.ts';

describe('cli', () => {
  it('prints its version', async () => {
    const io = memoryIO();
    expect(await main(['--version'], io)).toBe(0);
    expect(io.out.trim()).toBe('0.1.0');
  });
  it('rejects an unknown command with a usage exit code', async () => {
    const io = memoryIO();
    expect(await main(['frobnicate'], io)).toBe(2);
    expect(io.err).toMatch(/error/);
  });
});
