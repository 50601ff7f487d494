/**
 * sorac command line. Only this folder touches the terminal: stages return data
 * (values + diagnostics) and the commands render it.
 *
 * Exit codes: 0 ok; 1 user error (diagnostics, bad input); 2 usage error or non-empty diff
 * with --exit-code; 70 internal error (a bug in sorac).
 *
 * With --json every outcome is exactly one JSON document on stdout: the command's own on success
 * (and on the failures it reports itself), `{ ok: false, error, diagnostics }` for an error that ends
 * a command (a SoracError, a usage error found by commander, an internal error), `{ ok: true, help }`
 * for --help and `{ ok: true, version }` for --version. Human-readable text goes to stderr.
 */
import { Command, CommanderError } from 'commander';
import { InternalError, SoracError } from '../core/errors.ts';
import { EXIT, type CliIO, defaultIO } from './io.ts';
import { errorJson, internalErrorJson, renderError } from './render.ts';

export const VERSION = '0.1.0';

/**
 * The whole command tree (every command registers itself on it); main() parses with it, tests enumerate it.
 * The commands are imported here, lazily (a separate chunk of the bundle), so `sorac --version` loads none.
 */
export async function createProgram(io: CliIO, setExit: (code: number) => void, out: { stdout: (s: string) => void } = io): Promise<Command> {
  const { commands } = await import('./commands/index.ts');
  const program = new Command();
  program
    .name('sorac')
    .description('Check and compile Open-Sora model architectures (.sora) to ONNX and checkpoint key maps')
    .version(VERSION)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => out.stdout(s),
      writeErr: (s) => io.stderr(s),
    })
    .showSuggestionAfterError(true);
  for (const register of commands) register(program, io, setExit);
  return program;
}

/** --json given as an option (not after `--`). */
function wantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).includes('--json');
}

export async function main(argv: string[], io: CliIO = defaultIO()): Promise<number> {
  // `sorac --version` answers before any command (and the compiler, parser and runtime behind them) is loaded
  if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) {
    io.stdout(`${VERSION}\n`);
    return EXIT.OK;
  }
  let exitCode: number = EXIT.OK;
  const json = wantsJson(argv);
  // --json: commander's own text (help, version) is collected and printed as one JSON document
  let commanderText = '';
  const program = await createProgram(
    io,
    (code) => {
      exitCode = code;
    },
    json ? { stdout: (s) => void (commanderText += s) } : io,
  );
  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') {
        if (json) io.stdout(JSON.stringify(e.code === 'commander.version' ? { ok: true, version: VERSION } : { ok: true, help: commanderText }, null, 2) + '\n');
        return EXIT.OK;
      }
      // commander has printed `error: ...` on stderr; with --json the same as a SORA7007 document
      if (json) io.stdout(errorJson(new SoracError('SORA7007', e.message.replace(/^error: /, ''), { hint: 'see --help' })));
      return EXIT.USAGE;
    }
    if (e instanceof SoracError) {
      // every failure of every command: text on stderr, or one JSON document on stdout with --json
      if (json) io.stdout(errorJson(e));
      else io.stderr(renderError(e));
      return e.exitCode;
    }
    const msg = e instanceof Error ? (e.stack ?? e.message) : String(e);
    io.stderr(`internal error (this is a bug in sorac, please report it):\n${e instanceof InternalError ? e.message : msg}\n`);
    if (json) io.stdout(internalErrorJson(e instanceof Error ? e.message : String(e)));
    return EXIT.INTERNAL;
  }
}
