/**
 * sorac command line. Only this folder touches the terminal: stages return data
 * (values + diagnostics) and the commands render it.
 *
 * Exit codes: 0 ok; 1 user error (diagnostics, bad input); 2 usage error or non-empty diff
 * with --exit-code; 70 internal error (a bug in sorac).
 */
import { Command, CommanderError } from 'commander';
import { InternalError, SoracError } from '../core/errors.ts';
import { EXIT, type CliIO, defaultIO } from './io.ts';
import { errorJson, renderError } from './render.ts';

export const VERSION = '0.1.0';

export async function main(argv: string[], io: CliIO = defaultIO()): Promise<number> {
  // `sorac --version` answers before any command (and the compiler, parser and runtime behind them)
  // is loaded; every other invocation loads the commands lazily (a separate chunk of the bundle).
  if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) {
    io.stdout(`${VERSION}\n`);
    return EXIT.OK;
  }
  const { commands } = await import('./commands/index.ts');
  const program = new Command();
  let exitCode: number = EXIT.OK;
  program
    .name('sorac')
    .description('Check and compile Open-Sora model architectures (.sora) to ONNX and checkpoint key maps')
    .version(VERSION)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout(s),
      writeErr: (s) => io.stderr(s),
    })
    .showSuggestionAfterError(true);
  for (const register of commands) {
    register(program, io, (code) => {
      exitCode = code;
    });
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return EXIT.OK;
      return EXIT.USAGE;
    }
    if (e instanceof SoracError) {
      // every failure of every command: text on stderr, or one JSON document on stdout with --json
      if (argv.includes('--json')) io.stdout(errorJson(e));
      else io.stderr(renderError(e));
      return e.exitCode;
    }
    const msg = e instanceof Error ? (e.stack ?? e.message) : String(e);
    io.stderr(`internal error (this is a bug in sorac, please report it):\n${e instanceof InternalError ? e.message : msg}\n`);
    return EXIT.INTERNAL;
  }
}
