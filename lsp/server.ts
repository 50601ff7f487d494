/**
 * `sorac lsp`: the Language Server Protocol server (vscode-languageserver, over stdio or any stream
 * pair). Diagnostics as you type from the same compile + check path as `sorac check`; hover with the
 * symbolic shape and dtype of every value under the workspace's config; definition, references,
 * completion, formatting (= `sorac fmt`) and document symbols.
 *
 * Each document is analysed once per version: after a short debounce (bursts of edits collapse into
 * one analysis), or at once when a request asks about a version not analysed yet. When an edit leaves the model without a
 * compiled analysis (a syntax error), hovers outside the edited region answer from the last analysis
 * that compiled.
 */
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createConnection, type Connection, DiagnosticSeverity, type Diagnostic as LspDiagnostic, CompletionItemKind, SymbolKind, type DocumentSymbol, TextDocumentSyncKind, type Location, type MessageReader, type MessageWriter } from 'vscode-languageserver/node';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { format } from '../grammar/format.ts';
import type { Diagnostic, Span } from '../core/diagnostics.ts';
import type { ParseCache } from '../compiler/program.ts';
import { type Analysis, analyze, hasValues } from './analysis.ts';
import { complete, definition, type DocSymbol, documentSymbols, findReferences, hover } from './features.ts';
import { readWorkspaceConfig, type WorkspaceConfig } from './workspace.ts';

export interface ServerOptions {
  /** milliseconds to wait after an edit before analysing (default 25; 0 analyses at once) */
  readonly debounceMs?: number;
}

interface DocState {
  doc: TextDocument;
  /** the analysis of the latest version analysed */
  analysis?: Analysis;
  /** the last analysis whose model compiled (hovers outside an edit fall back to it) */
  good?: Analysis;
  timer?: NodeJS.Timeout;
  /** URIs of other files this document's diagnostics were published to */
  published: Set<string>;
}

/** Start a server on a connection made from streams (stdio for `sorac lsp`; message pipes in the tests). */
export function startServer(io: { reader: MessageReader; writer: MessageWriter } | { input: NodeJS.ReadableStream; output: NodeJS.WritableStream }, opts: ServerOptions = {}): Connection {
  const conn = 'reader' in io ? createConnection(io.reader, io.writer) : createConnection(io.input, io.output);
  const docs = new Map<string, DocState>();
  let root = process.cwd();
  let debounce = opts.debounceMs ?? 25;
  const parseCache: ParseCache = new Map();
  let ws: WorkspaceConfig = { problems: [], forFile: () => ({ problems: [] }) };

  const fileOf = (uri: string): string => (uri.startsWith('file:') ? fileURLToPath(uri) : path.resolve(root, uri));
  const uriOf = (file: string): string => pathToFileURL(file).href;

  /** Analyse the document's current text now and publish its diagnostics. */
  const analyseNow = (st: DocState): Analysis => {
    if (st.timer) clearTimeout(st.timer);
    st.timer = undefined;
    const doc = st.doc;
    const file = fileOf(doc.uri);
    const overlay = new Map<string, string>();
    for (const o of docs.values()) if (o !== st) overlay.set(fileOf(o.doc.uri), o.doc.getText());
    const cfg = ws.forFile(file);
    const a = analyze({ file, text: doc.getText(), version: doc.version, cwd: root, parseCache, ...(cfg.config ? { config: cfg.config } : {}), ...(cfg.model ? { model: cfg.model } : {}), overlay });
    st.analysis = a;
    if (hasValues(a)) st.good = a;
    if (docs.get(doc.uri) === st) publish(st, a, cfg.problems);
    return a;
  };

  /** A background analysis: an internal error is logged to the client, and the server keeps running. */
  const background = (st: DocState): void => {
    try {
      if (st.analysis?.version !== st.doc.version) analyseNow(st);
    } catch (e) {
      conn.console.error(`sorac lsp: internal error analysing ${st.doc.uri} (a bug in sorac, please report it): ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    }
  };

  /** Analyse after the debounce (edits within it restart the wait). */
  const schedule = (st: DocState): void => {
    if (st.timer) clearTimeout(st.timer);
    st.timer = debounce > 0 ? setTimeout(() => background(st), debounce) : undefined;
    if (debounce <= 0) setImmediate(() => background(st));
  };

  /** The analysis of the document's current version (waits for a pending one; a request does not wait out the debounce). */
  const analysisOf = async (uri: string): Promise<{ a: Analysis; st: DocState } | undefined> => {
    const st = docs.get(uri);
    if (!st) return undefined;
    if (st.analysis && st.analysis.version === st.doc.version) return { a: st.analysis, st };
    return { a: analyseNow(st), st };
  };

  const toRange = (a: Analysis | undefined, doc: TextDocument | undefined, s: Span) => {
    // positions in the document come from offsets (exact after edits); other files use line/col
    if (doc && a && s.file === a.display) return { start: doc.positionAt(s.start.offset), end: doc.positionAt(s.end.offset) };
    return { start: { line: s.start.line - 1, character: s.start.col - 1 }, end: { line: s.end.line - 1, character: s.end.col - 1 } };
  };

  const publish = (st: DocState, a: Analysis, problems: readonly Diagnostic[]): void => {
    const byUri = new Map<string, LspDiagnostic[]>();
    // the document's own URI (an unsaved `untitled:` document has no file URI)
    const own = st.doc.uri;
    byUri.set(own, []);
    const displayToUri = new Map<string, string>();
    for (const f of a.program?.files.values() ?? []) displayToUri.set(f.display, f.path === a.file ? own : uriOf(f.path));
    const uriForSpan = (s: Span | undefined) => (s ? (displayToUri.get(s.file) ?? uriOf(path.resolve(root, s.file))) : own);
    for (const d of [...problems, ...a.diagnostics]) {
      const target = uriForSpan(d.span);
      const relatedInformation = (d.related ?? []).map((r) => ({ location: { uri: uriForSpan(r.span), range: toRange(a, st.doc, r.span) }, message: r.message }));
      const message = [d.message, ...(d.notes ?? []), ...(d.hint ? [`hint: ${d.hint}`] : [])].join('\n');
      const lsp: LspDiagnostic = {
        range: d.span ? toRange(a, st.doc, d.span) : { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } },
        severity: d.severity === 'error' ? DiagnosticSeverity.Error : d.severity === 'warning' ? DiagnosticSeverity.Warning : DiagnosticSeverity.Information,
        code: d.code,
        source: 'sorac',
        message,
        ...(relatedInformation.length ? { relatedInformation } : {}),
      };
      if (!byUri.has(target)) byUri.set(target, []);
      byUri.get(target)!.push(lsp);
      if (target !== own) {
        // a problem found in an imported file (std/nn.sora) shows in the document too: at its first
        // related location here, else at the top
        const here = (d.related ?? []).find((r) => uriForSpan(r.span) === own);
        byUri.get(own)!.push({ ...lsp, range: here ? toRange(a, st.doc, here.span) : { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } }, message: `${d.span!.file}:${d.span!.start.line}:${d.span!.start.col}: ${message}` });
      }
    }
    for (const u of st.published) if (!byUri.has(u)) conn.sendDiagnostics({ uri: u, diagnostics: [] });
    st.published = new Set([...byUri.keys()].filter((u) => u !== own));
    for (const [uri, diagnostics] of byUri) conn.sendDiagnostics({ uri, version: a.version, diagnostics });
  };

  conn.onInitialize((params) => {
    const folder = params.workspaceFolders?.[0]?.uri ?? params.rootUri;
    if (folder) root = fileURLToPath(folder);
    const init = params.initializationOptions as { debounceMs?: number } | undefined;
    if (typeof init?.debounceMs === 'number' && init.debounceMs >= 0) debounce = init.debounceMs;
    ws = readWorkspaceConfig(root);
    return {
      capabilities: {
        textDocumentSync: TextDocumentSyncKind.Incremental,
        hoverProvider: true,
        definitionProvider: true,
        referencesProvider: true,
        completionProvider: { triggerCharacters: ['"', ' ', '('] },
        documentFormattingProvider: true,
        documentSymbolProvider: true,
      },
      serverInfo: { name: 'sorac', version: '0.1.0' },
    };
  });

  conn.onDidOpenTextDocument(({ textDocument: t }) => {
    const st: DocState = { doc: TextDocument.create(t.uri, t.languageId, t.version, t.text), published: new Set() };
    docs.set(t.uri, st);
    schedule(st);
  });
  conn.onDidChangeTextDocument(({ textDocument: t, contentChanges }) => {
    const st = docs.get(t.uri);
    if (!st) return;
    st.doc = TextDocument.update(st.doc, contentChanges, t.version);
    schedule(st);
  });
  conn.onDidCloseTextDocument(({ textDocument: t }) => {
    const st = docs.get(t.uri);
    if (st?.timer) clearTimeout(st.timer);
    docs.delete(t.uri);
    for (const u of [t.uri, ...(st?.published ?? [])]) conn.sendDiagnostics({ uri: u, diagnostics: [] });
  });
  conn.onDidChangeWatchedFiles(() => {
    ws = readWorkspaceConfig(root);
    for (const st of docs.values()) {
      st.analysis = undefined;
      schedule(st);
    }
  });

  conn.onHover(async ({ textDocument, position }) => {
    const r = await analysisOf(textDocument.uri);
    if (!r) return null;
    const h = hover(r.a, r.st.good, r.st.doc.offsetAt(position));
    return h ? { contents: { kind: 'markdown', value: h.markdown }, range: toRange(r.a, r.st.doc, h.span) } : null;
  });

  conn.onDefinition(async ({ textDocument, position }) => {
    const r = await analysisOf(textDocument.uri);
    if (!r) return null;
    const d = definition(r.a, r.st.doc.offsetAt(position));
    if (!d) return null;
    return { uri: d.file === r.a.file ? r.st.doc.uri : uriOf(d.file), range: d.file === r.a.file ? toRange(r.a, r.st.doc, d.span) : toRange(undefined, undefined, d.span) } satisfies Location;
  });

  conn.onReferences(async ({ textDocument, position, context }) => {
    const r = await analysisOf(textDocument.uri);
    if (!r) return [];
    return findReferences(r.a, r.st.doc.offsetAt(position), context.includeDeclaration).map((x) => ({ uri: x.file === r.a.file ? r.st.doc.uri : uriOf(x.file), range: x.file === r.a.file ? toRange(r.a, r.st.doc, x.span) : toRange(undefined, undefined, x.span) }));
  });

  conn.onCompletion(async ({ textDocument, position }) => {
    const r = await analysisOf(textDocument.uri);
    if (!r) return [];
    const kinds = { builtin: CompletionItemKind.Function, module: CompletionItemKind.Class, fn: CompletionItemKind.Function, config: CompletionItemKind.Property, local: CompletionItemKind.Variable, member: CompletionItemKind.Field, axis: CompletionItemKind.EnumMember } as const;
    return complete(r.a, r.st.doc.offsetAt(position)).map((c) => ({ label: c.label, kind: kinds[c.kind], ...(c.detail ? { detail: c.detail } : {}), ...(c.doc ? { documentation: c.doc } : {}) }));
  });

  conn.onDocumentFormatting(({ textDocument }) => {
    const st = docs.get(textDocument.uri);
    if (!st) return null;
    const text = st.doc.getText();
    const r = format(text, textDocument.uri);
    // like `sorac fmt`: a file with syntax errors is left as it is
    if (r.text === undefined || r.text === text) return [];
    return [{ range: { start: { line: 0, character: 0 }, end: st.doc.positionAt(text.length) }, newText: r.text }];
  });

  conn.onDocumentSymbol(async ({ textDocument }) => {
    const r = await analysisOf(textDocument.uri);
    if (!r) return [];
    const kinds = { model: SymbolKind.Class, module: SymbolKind.Class, pipeline: SymbolKind.Class, entry: SymbolKind.Method, fn: SymbolKind.Function, config: SymbolKind.Property, member: SymbolKind.Field } as const;
    const conv = (s: DocSymbol): DocumentSymbol => ({ name: s.name, kind: kinds[s.kind], ...(s.detail ? { detail: s.detail } : {}), range: toRange(r.a, r.st.doc, s.span), selectionRange: toRange(r.a, r.st.doc, s.selection), children: s.children.map(conv) });
    return documentSymbols(r.a).map(conv);
  });

  conn.listen();
  return conn;
}
