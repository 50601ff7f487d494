/**
 * A test client for `sorac lsp`: the server in-process on a pair of streams (the same code `sorac lsp`
 * runs over stdio), driven through the protocol with vscode-jsonrpc.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { createMessageConnection, type MessageConnection, StreamMessageReader, StreamMessageWriter } from 'vscode-jsonrpc/node';
import type { PublishDiagnosticsParams } from 'vscode-languageserver-protocol';
import { startServer } from '../../lsp/server.ts';

export const ROOT = join(import.meta.dirname, '..', '..');

export interface Client {
  readonly conn: MessageConnection;
  /** diagnostics published so far, by URI (latest) */
  readonly diagnostics: Map<string, PublishDiagnosticsParams>;
  /** resolves with the next diagnostics published for `uri` (at `version` when given) */
  nextDiagnostics(uri: string, version?: number): Promise<PublishDiagnosticsParams>;
  open(file: string, text?: string): Promise<{ uri: string; text: string }>;
  change(uri: string, version: number, text: string): void;
  close(): void;
}

export async function startClient(opts: { root?: string; debounceMs?: number } = {}): Promise<Client> {
  const c2s = new PassThrough();
  const s2c = new PassThrough();
  // message pipes (the stream form of createConnection ends the process when its input closes)
  const server = startServer({ reader: new StreamMessageReader(c2s), writer: new StreamMessageWriter(s2c) });
  const conn = createMessageConnection(new StreamMessageReader(s2c), new StreamMessageWriter(c2s));
  const diagnostics = new Map<string, PublishDiagnosticsParams>();
  const waiting: { uri: string; version?: number; resolve: (p: PublishDiagnosticsParams) => void }[] = [];
  conn.onNotification('textDocument/publishDiagnostics', (p: PublishDiagnosticsParams) => {
    diagnostics.set(p.uri, p);
    for (let i = waiting.length - 1; i >= 0; i--) {
      const w = waiting[i]!;
      if (w.uri === p.uri && (w.version === undefined || w.version === p.version)) {
        waiting.splice(i, 1);
        w.resolve(p);
      }
    }
  });
  conn.listen();
  const root = opts.root ?? ROOT;
  await conn.sendRequest('initialize', { processId: null, rootUri: pathToFileURL(root).href, capabilities: {}, initializationOptions: { debounceMs: opts.debounceMs ?? 0 } });
  await conn.sendNotification('initialized', {});
  return {
    conn,
    diagnostics,
    nextDiagnostics: (uri, version) => new Promise((resolve) => waiting.push({ uri, ...(version !== undefined ? { version } : {}), resolve })),
    async open(file, text) {
      const abs = file.startsWith('/') ? file : join(root, file);
      const uri = pathToFileURL(abs).href;
      const t = text ?? readFileSync(abs, 'utf8');
      await conn.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'sora', version: 1, text: t } });
      return { uri, text: t };
    },
    change(uri, version, text) {
      void conn.sendNotification('textDocument/didChange', { textDocument: { uri, version }, contentChanges: [{ text }] });
    },
    close() {
      conn.dispose();
      server.dispose();
      c2s.destroy();
      s2c.destroy();
    },
  };
}

/** The LSP position of the `n`th occurrence (0-based) of `needle` in `text`, plus `delta` characters. */
export function positionOf(text: string, needle: string, n = 0, delta = 0): { line: number; character: number } {
  let at = -1;
  for (let i = 0; i <= n; i++) {
    at = text.indexOf(needle, at + 1);
    if (at < 0) throw new Error(`"${needle}" occurs fewer than ${n + 1} times`);
  }
  const before = text.slice(0, at + delta);
  const line = before.split('\n').length - 1;
  return { line, character: before.length - before.lastIndexOf('\n') - 1 };
}
