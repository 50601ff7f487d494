/**
 * sorac lsp [--stdio]
 *
 * The language server for editors (docs/cli/lsp.md), over stdin/stdout. The server and its protocol
 * library are loaded only by this command, so other commands do not pay for them at start-up.
 */
import type { Command } from 'commander';
import type { RegisterCommand } from '../command.ts';
import type { CliIO } from '../io.ts';

export const registerLsp: RegisterCommand = (program: Command, _io: CliIO, setExit) => {
  program
    .command('lsp')
    .description('language server for editors (Language Server Protocol over stdio)')
    .option('--stdio', 'talk over stdin/stdout (the default and only transport; accepted for editor clients that pass it)')
    .action(async () => {
      const { startServer } = await import('../../lsp/server.ts');
      const conn = startServer({ input: process.stdin, output: process.stdout });
      // the process lives as long as the client: exit when the connection ends
      await new Promise<void>((resolve) => conn.onExit(() => resolve()));
      setExit(0);
    });
};
