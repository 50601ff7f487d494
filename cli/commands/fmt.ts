/**
 * sorac fmt FILE... [--check] [--stdout]
 *
 * Rewrites .sora files in canonical format (atomically, only when they change). --check lists
 * files that are not formatted and exits 1 without writing; --stdout prints instead of writing.
 * Files with syntax errors are reported and left untouched. A symlink is written through (its target
 * is replaced atomically; the link stays) and the file keeps its mode.
 */
import { readFileSync, realpathSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { checkSourceFile } from '../../api/model.ts';
import { displayPath, format } from '../../api/source.ts';
import { writeFileAtomic } from '../../core/atomic.ts';
import type { CliIO } from '../io.ts';
import { EXIT } from '../io.ts';
import { renderDiagnostics } from '../render.ts';
import type { RegisterCommand } from '../command.ts';

export const registerFmt: RegisterCommand = (program: Command, io: CliIO, setExit) => {
  program
    .command('fmt')
    .argument('<files...>', '.sora files')
    .description('format .sora files canonically (idempotent)')
    .option('--check', 'do not write; exit 1 if any file is not formatted')
    .option('--stdout', 'print the formatted text instead of writing it')
    .action(async (files: string[], opts: { check?: boolean; stdout?: boolean }) => {
      let code: number = EXIT.OK;
      for (const file of files) {
        checkSourceFile(file);
        const text = readFileSync(file, 'utf8');
        const shown = displayPath(file, io.cwd);
        const r = format(text, shown);
        if (r.text === undefined) {
          io.stderr(renderDiagnostics(r.diagnostics, new Map([[shown, text]]), { pretty: io.isTTY, color: io.color }));
          io.stderr(`${shown}: not formatted (syntax errors)\n`);
          code = EXIT.USER;
          continue;
        }
        if (opts.stdout) {
          io.stdout(r.text);
          continue;
        }
        if (r.text === text) continue;
        if (opts.check) {
          io.stdout(`${shown}: not formatted\n`);
          code = EXIT.USER;
          continue;
        }
        // a symlink stays a symlink: the file it points to is rewritten (atomically, beside it), with its mode
        const target = realpathSync(file);
        await writeFileAtomic(target, new TextEncoder().encode(r.text), { mode: statSync(target).mode & 0o7777 });
        io.stdout(`formatted ${shown}\n`);
      }
      setExit(code);
    });
};
