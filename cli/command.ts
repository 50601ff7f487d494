import type { Command } from 'commander';
import type { CliIO } from './io.ts';

/** A command registers itself on the program and reports its exit code through setExit. */
export type RegisterCommand = (program: Command, io: CliIO, setExit: (code: number) => void) => void;
