/**
 * sorac fmt FILE... [--check] [--stdout] [--json]
 *
 * Rewrites .sora files in canonical format (atomically, only when they change). --check lists
 * files that are not formatted and exits 1 without writing; --stdout prints instead of writing.
 * Files with syntax errors are reported and left untouched. A symlink is written through (its target
 * is replaced atomically; the link stays) and the file keeps its mode. --json: one document
 * `{ ok, files: [{ file, status, text? }], diagnostics }` (text with --stdout).
 */
import { readFileSync, realpathSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { checkSourceFile } from '../../api/model.ts';
import { displayPath, format } from '../../api/source.ts';
import { writeFileAtomic } from '../../core/atomic.ts';
import type { Diagnostic } from '../../core/diagnostics.ts';
import type { CliIO } from '../io.ts';
import { EXIT } from '../io.ts';
import { renderDiagnostics } from '../render.ts';
import type { RegisterCommand } from '../command.ts';

type FmtStatus = 'formatted' | 'unchanged' | 'not formatted' | 'syntax errors' | 'printed';

export const registerFmt: RegisterCommand = (program: Command, io: CliIO, setExit) => {
  program
    .command('fmt')
    .argument('<files...>', '.sora files')
    .description('format .sora files canonically (idempotent)')
    .option('--check', 'do not write; exit 1 if any file is not formatted')
    .option('--stdout', 'print the formatted text instead of writing it')
    .option('--json', 'one JSON document: each file\'s status (and text with --stdout), the diagnostics')
    .action(async (files: string[], opts: { check?: boolean; stdout?: boolean; json?: boolean }) => {
      let code: number = EXIT.OK;
      const results: { file: string; status: FmtStatus; text?: string }[] = [];
      const diagnostics: Diagnostic[] = [];
      for (const file of files) {
        checkSourceFile(file);
        const text = readFileSync(file, 'utf8');
        const shown = displayPath(file, io.cwd);
        const r = format(text, shown);
        if (r.text === undefined) {
          diagnostics.push(...r.diagnostics);
          results.push({ file: shown, status: 'syntax errors' });
          if (!opts.json) {
            io.stderr(renderDiagnostics(r.diagnostics, new Map([[shown, text]]), { pretty: io.isTTY, color: io.color }));
            io.stderr(`${shown}: not formatted (syntax errors)\n`);
          }
          code = EXIT.USER;
          continue;
        }
        if (opts.stdout) {
          results.push({ file: shown, status: 'printed', text: r.text });
          if (!opts.json) io.stdout(r.text);
          continue;
        }
        if (r.text === text) {
          results.push({ file: shown, status: 'unchanged' });
          continue;
        }
        if (opts.check) {
          results.push({ file: shown, status: 'not formatted' });
          if (!opts.json) io.stdout(`${shown}: not formatted\n`);
          code = EXIT.USER;
          continue;
        }
        // a symlink stays a symlink: the file it points to is rewritten (atomically, beside it), with its mode
        const target = realpathSync(file);
        await writeFileAtomic(target, new TextEncoder().encode(r.text), { mode: statSync(target).mode & 0o7777 });
        results.push({ file: shown, status: 'formatted' });
        if (!opts.json) io.stdout(`formatted ${shown}\n`);
      }
      if (opts.json) io.stdout(JSON.stringify({ ok: code === EXIT.OK, files: results, diagnostics }, null, 2) + '\n');
      setExit(code);
    });
};
