/**
 * The VS Code extension (editors/vscode/): its TextMate grammar gives every token of every bundled .sora
 * file a scope (tokenized with vscode-textmate + vscode-oniguruma, as VS Code does), knows every builtin
 * and keyword; the manifest's paths exist; the client starts `sorac lsp --stdio` for .sora documents.
 */
import { readdirSync, readFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as oniguruma from 'vscode-oniguruma';
import * as vsctm from 'vscode-textmate';
import { BUILTINS } from '../../compiler/builtins/index.ts';
import { KEYWORDS } from '../../grammar/lexer.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const EXT = join(ROOT, 'editors/vscode');
const require = createRequire(import.meta.url);
const GRAMMAR = JSON.parse(readFileSync(join(EXT, 'syntaxes/sora.tmLanguage.json'), 'utf8'));

function soraFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? soraFiles(join(dir, e.name)) : e.name.endsWith('.sora') ? [join(dir, e.name)] : []));
}
const FILES = [...soraFiles(join(ROOT, 'examples')), ...soraFiles(join(ROOT, 'std'))];

let onigLoaded: Promise<void> | undefined;
async function grammarFrom(json: unknown): Promise<vsctm.IGrammar> {
  onigLoaded ??= oniguruma.loadWASM(readFileSync(require.resolve('vscode-oniguruma/release/onig.wasm')).buffer as ArrayBuffer);
  await onigLoaded;
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({ createOnigScanner: (p: string[]) => new oniguruma.OnigScanner(p), createOnigString: (s: string) => new oniguruma.OnigString(s) }),
    loadGrammar: async (scope) => (scope === 'source.sora' ? vsctm.parseRawGrammar(JSON.stringify(json), 'sora.tmLanguage.json') : null),
  });
  return (await registry.loadGrammar('source.sora'))!;
}

/** Tokens of a text: [text, scopes] per token. */
function tokenize(g: vsctm.IGrammar, text: string): { line: number; text: string; scopes: string[] }[] {
  const out: { line: number; text: string; scopes: string[] }[] = [];
  let state = vsctm.INITIAL;
  text.split('\n').forEach((line, i) => {
    const r = g.tokenizeLine(line, state);
    for (const t of r.tokens) out.push({ line: i + 1, text: line.slice(t.startIndex, t.endIndex), scopes: t.scopes });
    state = r.ruleStack;
  });
  return out;
}

/** Tokens with text other than whitespace that only the root scope covers, or that are marked invalid. */
function unscoped(g: vsctm.IGrammar, text: string): string[] {
  return tokenize(g, text)
    .filter((t) => t.text.trim() && (t.scopes.length < 2 || t.scopes.some((s) => s.startsWith('invalid'))))
    .map((t) => `${t.line}: ${JSON.stringify(t.text.trim())} ${t.scopes.join(' ')}`);
}

describe('the TextMate grammar', () => {
  let g: vsctm.IGrammar;
  beforeAll(async () => {
    g = await grammarFrom(GRAMMAR);
  });

  it.each(FILES.map((f) => relative(ROOT, f)))('scopes every token of %s', (rel) => {
    expect(unscoped(g, readFileSync(join(ROOT, rel), 'utf8'))).toEqual([]);
  });

  it('the check fails on a token the grammar leaves unscoped or marks invalid', async () => {
    const without = { ...GRAMMAR, patterns: GRAMMAR.patterns.filter((p: { include: string }) => p.include !== '#identifier' && p.include !== '#invalid') };
    const g2 = await grammarFrom(without);
    expect(unscoped(g2, 'let x = y + 1')).toEqual(['1: "x" source.sora', '1: "y" source.sora']);
    expect(unscoped(g, 'let x = $y')).toEqual(['1: "$" source.sora invalid.illegal.character.sora']);
  });

  it('knows every builtin (the checker table) and every keyword', () => {
    const call = tokenize(g, Object.keys(BUILTINS).map((b) => `${b}(x)`).join('\n'));
    const notBuiltin = call.filter((t) => /^[a-z_]\w*$/.test(t.text) && t.text !== 'x' && !t.scopes.includes('support.function.builtin.sora'));
    expect(notBuiltin.map((t) => t.text)).toEqual([]);
    const kw = tokenize(g, KEYWORDS.map((k) => `${k} `).join('\n'));
    const plain = kw.filter((t) => t.text.trim() && t.scopes.some((s) => s.startsWith('variable')));
    expect(plain.map((t) => t.text)).toEqual([]);
  });

  it('highlights a model the way a reader expects', () => {
    const toks = tokenize(g, 'model STDiT3 version "1.2" {\n  let x = layer_norm(h, eps=1e-6)  # norm\n}');
    const scopeOf = (text: string) => toks.find((t) => t.text === text)!.scopes.at(-1);
    expect(scopeOf('model')).toBe('storage.type.class.sora');
    expect(scopeOf('STDiT3')).toBe('entity.name.type.class.sora');
    expect(scopeOf('layer_norm')).toBe('support.function.builtin.sora');
    expect(scopeOf('1e-6')).toBe('constant.numeric.float.sora');
    expect(scopeOf('# norm')).toBe('comment.line.number-sign.sora');
  });
});

describe('the extension', () => {
  const manifest = JSON.parse(readFileSync(join(EXT, 'package.json'), 'utf8'));

  it('manifest: the language, grammar and configuration files it names exist and agree', () => {
    const lang = manifest.contributes.languages[0];
    expect(lang).toMatchObject({ id: 'sora', extensions: ['.sora'] });
    expect(JSON.parse(readFileSync(join(EXT, lang.configuration), 'utf8')).comments.lineComment).toBe('#');
    const gr = manifest.contributes.grammars[0];
    expect(gr).toMatchObject({ language: 'sora', scopeName: GRAMMAR.scopeName });
    expect(JSON.parse(readFileSync(join(EXT, gr.path), 'utf8')).scopeName).toBe('source.sora');
    expect(Object.keys(manifest.dependencies)).toEqual(['vscode-languageclient']);
    // the root package does not depend on the client
    const root = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    expect({ ...root.dependencies, ...root.devDependencies }['vscode-languageclient']).toBeUndefined();
  });

  it('activate() starts `sorac lsp --stdio` for .sora documents and watches sorac.json', async () => {
    const made: { id: string; server: { run: { command: string; args: string[] } }; client: { documentSelector: unknown; synchronize: { fileEvents: string } } }[] = [];
    const fakes: Record<string, unknown> = {
      vscode: {
        workspace: {
          workspaceFolders: [{ uri: { fsPath: ROOT } }],
          getConfiguration: () => ({ get: (k: string) => (k === 'debounceMs' ? 25 : '') }),
          createFileSystemWatcher: (glob: string) => glob,
          onDidChangeConfiguration: () => ({ dispose() {} }),
        },
      },
      'vscode-languageclient/node': {
        LanguageClient: class {
          constructor(id: string, _name: string, server: never, client: never) {
            made.push({ id, server, client });
          }
          start() {
            return Promise.resolve();
          }
          stop() {
            return Promise.resolve();
          }
        },
      },
    };
    const load = (Module as unknown as { _load: (req: string, ...rest: unknown[]) => unknown })._load;
    (Module as unknown as { _load: unknown })._load = (req: string, ...rest: unknown[]) => (req in fakes ? fakes[req] : load(req, ...rest));
    try {
      const ext = require(join(EXT, 'extension.js'));
      await ext.activate({ subscriptions: [] });
      expect(made).toHaveLength(1);
      expect(made[0]!.server.run.args).toEqual(['lsp', '--stdio']);
      expect(made[0]!.server.run.command).toMatch(/sorac$/);
      expect(made[0]!.client.documentSelector).toEqual([{ scheme: 'file', language: 'sora' }]);
      expect(made[0]!.client.synchronize.fileEvents).toBe('**/sorac.json');
    } finally {
      (Module as unknown as { _load: unknown })._load = load;
    }
  });
});
