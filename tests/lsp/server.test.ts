/**
 * `sorac lsp` through the protocol: initialize, didOpen, didChange, hover, definition, references,
 * completion, formatting and document symbols, on the bundled examples. The expected answers come from
 * other paths: shapes from the traced graph, diagnostics from the `sorac check --json` CLI.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMessageConnection, StreamMessageReader, StreamMessageWriter } from 'vscode-jsonrpc/node';
import type { CompletionItem, Diagnostic, DocumentSymbol, Hover, Location, TextEdit } from 'vscode-languageserver-protocol';
import { loadModel } from '../../api/model.ts';
import { format } from '../../api/source.ts';
import { traceEntry } from '../../compiler/compile.ts';
import { type Client, positionOf, ROOT, startClient } from './client.ts';

const STDIT3 = readFileSync(join(ROOT, 'examples/stdit3.sora'), 'utf8');
const hoverText = (h: Hover | null) => (h && typeof h.contents === 'object' && 'value' in h.contents ? h.contents.value : '');

describe('sorac lsp', () => {
  let c: Client;
  let uri: string;
  beforeAll(async () => {
    c = await startClient();
    const diags = c.nextDiagnostics(pathToFileURL(join(ROOT, 'examples/stdit3.sora')).href);
    uri = (await c.open('examples/stdit3.sora')).uri;
    expect((await diags).diagnostics).toEqual([]);
  }, 60_000);
  afterAll(() => c.close());

  const hover = (text: string, needle: string, n = 0, delta = 1, u = uri) => c.conn.sendRequest('textDocument/hover', { textDocument: { uri: u }, position: positionOf(text, needle, n, delta) }) as Promise<Hover | null>;

  it('hover inside STDiT3Block shows the shape the traced graph has at that expression', async () => {
    // the checker's answer, by another path: the Mul node the tracer made for `gate_msa * x_m` (line 29)
    const at = positionOf(STDIT3, 'gate_msa * x_m');
    const g = traceEntry(loadModel({ file: join(ROOT, 'examples/stdit3.sora'), cwd: ROOT }), 'forward').graph!;
    const mul = g.nodes.find((n) => n.op === 'Mul' && n.scope === 'spatial_blocks.0' && n.source?.line === at.line + 1 && n.source.col === at.character + 1)!;
    expect(mul).toBeDefined();
    const want = `${mul.outputs[0]!.dtype}[${mul.outputs[0]!.shape.join(', ')}]`;
    expect(want).toBe('f32[B, Tx*floor(Hx+1,2)*floor(Wx+1,2), 1152]');
    // on the binding, on the expression, and on a later use of the name
    expect(hoverText(await hover(STDIT3, 'let x_m_s', 0, 5))).toContain(`x_m_s: ${want}`);
    expect(hoverText(await hover(STDIT3, 'gate_msa * x_m', 0, 9))).toContain(`gate_msa * x_m: ${want}`);
    expect(hoverText(await hover(STDIT3, 'let mods', 0, 5))).toContain('mods: f32[B, 6, 1152]');
  });

  it('hover on a config key shows its value and where it was set; on a layer its signature and doc', async () => {
    const depth = hoverText(await hover(STDIT3, 'range(depth)', 0, 7));
    expect(depth).toContain('depth: int = 28');
    expect(depth).toMatch(/examples\/stdit3\.sora:\d+:\d+/);
    const lin = hoverText(await hover(STDIT3, 'Linear(hidden_size', 0, 2));
    expect(lin).toContain('module Linear(in_features: int, out_features: int, bias: bool = true)');
    expect(lin).toContain('nn.Linear: y = x W^T + b');
    const ln = hoverText(await hover(STDIT3, 'layer_norm(x, eps', 0, 2));
    expect(ln).toContain('layer_norm(x, weight?, bias?, eps?) -> tensor');
    expect(ln).toContain('Layer normalization over the last axis');
  });

  it('go to definition crosses imports into std/, and references find every use', async () => {
    const def = (await c.conn.sendRequest('textDocument/definition', { textDocument: { uri }, position: positionOf(STDIT3, 'Attention(hidden_size', 0, 2) })) as Location;
    expect(fileURLToPath(def.uri)).toBe(join(ROOT, 'std/nn.sora'));
    const nn = readFileSync(join(ROOT, 'std/nn.sora'), 'utf8');
    expect(def.range.start).toEqual(positionOf(nn, 'module Attention(', 0, 7));
    // a local: x_m_s inside STDiT3Block.forward, every occurrence of the name in that function
    const refs = (await c.conn.sendRequest('textDocument/references', { textDocument: { uri }, position: positionOf(STDIT3, 'let x_m_s', 0, 5), context: { includeDeclaration: true } })) as Location[];
    const block = STDIT3.slice(0, STDIT3.indexOf('\n}\n'));
    expect(refs.length).toBe(block.match(/\bx_m_s\b/g)!.length);
    expect(refs.every((r) => r.uri === uri && r.range.start.line < block.split('\n').length)).toBe(true);
    // `x_m = rearrange(attn(rearrange(x_m, ...` reads the x_m bound by the let before it
    const reads = (await c.conn.sendRequest('textDocument/definition', { textDocument: { uri }, position: positionOf(STDIT3, 'rearrange(x_m, "B (T S) C -> (B S) T C"', 0, 11) })) as Location;
    expect(reads.range.start).toEqual(positionOf(STDIT3, 'let x_m =', 0, 4));
  });

  it('completion: axis names inside a rearrange pattern; layers with signatures, builtins and config keys elsewhere', async () => {
    const axes = (await c.conn.sendRequest('textDocument/completion', { textDocument: { uri }, position: positionOf(STDIT3, '"B (T S) C -> (B S) T C"', 0, 3) })) as CompletionItem[];
    expect(axes.map((x) => x.label)).toEqual(['B', 'C', 'S', 'T']);
    const all = (await c.conn.sendRequest('textDocument/completion', { textDocument: { uri }, position: positionOf(STDIT3, 'x_embedder = ', 0, 13) })) as CompletionItem[];
    const by = new Map(all.map((x) => [x.label, x]));
    expect(by.get('PatchEmbed3D')?.detail).toMatch(/^module PatchEmbed3D\(/);
    expect(by.get('layer_norm')?.detail).toBe('layer_norm(x, weight?, bias?, eps?)');
    expect(by.get('hidden_size')?.detail).toBe('config = 1152');
  });

  it('document symbols list modules, the model, its config keys and entries', async () => {
    const syms = (await c.conn.sendRequest('textDocument/documentSymbol', { textDocument: { uri } })) as DocumentSymbol[];
    expect(syms.map((s) => s.name)).toEqual(['STDiT3Block', 'pos_embed_2d', 'STDiT3']);
    const model = syms[2]!;
    expect(model.children!.find((s) => s.name === 'config')!.children!.map((s) => s.name)).toContain('depth');
    expect(model.children!.find((s) => s.name === 'forward')!.detail).toMatch(/^entry forward\(/);
  });

  it('formatting is sorac fmt; a file with syntax errors is left alone', async () => {
    const messy = STDIT3.replace('let mods = scale_shift_table[none]', 'let   mods=scale_shift_table [ none ]');
    const { uri: u } = await c.open(join(tmpdir(), 'sorac-lsp-fmt.sora'), messy);
    const edits = (await c.conn.sendRequest('textDocument/formatting', { textDocument: { uri: u }, options: { tabSize: 2, insertSpaces: true } })) as TextEdit[];
    expect(edits).toHaveLength(1);
    expect(edits[0]!.newText).toBe(format(messy).text);
    expect(edits[0]!.newText).toContain('let mods = scale_shift_table[none]');
    c.change(u, 2, messy + '\nmodule (');
    expect(await c.conn.sendRequest('textDocument/formatting', { textDocument: { uri: u }, options: { tabSize: 2, insertSpaces: true } })).toEqual([]);
  });

  it('an edit with a syntax error: its diagnostic, and hovers outside the edit still answer', async () => {
    const { uri: u, text } = await c.open(join(tmpdir(), 'sorac-lsp-syntax.sora'), STDIT3);
    const broken = text.replace('    h = rearrange(h, "B T S C -> B (T S) C")', '    h = rearrange(h, "B T S C -> B (T S) C"\n    let = (');
    const next = c.nextDiagnostics(u, 2);
    c.change(u, 2, broken);
    const d = await next;
    expect(d.diagnostics.map((x) => x.code)).toContain('SORA1002');
    // before the edit
    const h1 = hoverText(await hover(broken, 'let x_m_s', 0, 5, u));
    expect(h1).toContain('x_m_s: f32[B, Tx*floor(Hx+1,2)*floor(Wx+1,2), 1152]');
    expect(h1).toContain('last analysis without errors');
    // after the edit (offsets shifted by the inserted text)
    const after = hoverText(await hover(broken, 'h = final_layer(h', 0, 0, u));
    expect(after).toMatch(/^```sora\nh: f32\[B, /);
    // definitions come from the recovering parser
    const def = (await c.conn.sendRequest('textDocument/definition', { textDocument: { uri: u }, position: positionOf(broken, 'STDiT3Block(hidden_size', 0, 2) })) as Location;
    expect(def.range.start).toEqual(positionOf(broken, 'module STDiT3Block', 0, 7));
  });
});

describe('an unsaved document (untitled: URI)', () => {
  it('is checked from its text, and its diagnostics and definitions carry its own URI', async () => {
    const c = await startClient();
    try {
      const uri = 'untitled:Untitled-1';
      const text = STDIT3.replace('range(depth)', 'range(depht)');
      const next = c.nextDiagnostics(uri);
      await c.conn.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'sora', version: 1, text } });
      const d = await next;
      expect(d.diagnostics.map((x) => x.code)).toEqual(['SORA2001']);
      const def = (await c.conn.sendRequest('textDocument/definition', { textDocument: { uri }, position: positionOf(text, 'STDiT3Block(hidden_size', 0, 2) })) as Location;
      expect(def.uri).toBe(uri);
    } finally {
      c.close();
    }
  }, 60_000);
});

describe('sorac lsp over stdio (the bundled CLI)', () => {
  it('answers initialize, publishes diagnostics for an opened file, and exits 0 after shutdown + exit', async () => {
    const child = spawn(process.execPath, [join(ROOT, 'bin/sorac.js'), 'lsp', '--stdio'], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    const conn = createMessageConnection(new StreamMessageReader(child.stdout), new StreamMessageWriter(child.stdin));
    const published = new Promise<{ uri: string; diagnostics: Diagnostic[] }>((resolve) => conn.onNotification('textDocument/publishDiagnostics', resolve));
    conn.listen();
    const init = (await conn.sendRequest('initialize', { processId: null, rootUri: pathToFileURL(ROOT).href, capabilities: {} })) as { capabilities: Record<string, unknown> };
    expect(init.capabilities).toMatchObject({ hoverProvider: true, definitionProvider: true, referencesProvider: true, documentFormattingProvider: true, documentSymbolProvider: true });
    await conn.sendNotification('initialized', {});
    const uri = pathToFileURL(join(ROOT, 'examples/stdit3.sora')).href;
    await conn.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'sora', version: 1, text: STDIT3.replace('range(depth)', 'range(depht)') } });
    const d = await published;
    expect(d.uri).toBe(uri);
    expect(d.diagnostics.map((x) => x.code)).toContain('SORA2001');
    await conn.sendRequest('shutdown');
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    await conn.sendNotification('exit');
    expect(await exited).toBe(0);
    conn.dispose();
  }, 60_000);
});

describe('sorac lsp diagnostics match sorac check', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sorac-lsp-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a typo gives the diagnostic the CLI gives, at the same span', async () => {
    const file = join(dir, 'typo.sora');
    const text = STDIT3.replace('gate_msa * x_m', 'gate_msaa * x_m');
    writeFileSync(file, text);
    const run = spawnSync(process.execPath, [join(ROOT, 'bin/sorac.js'), 'check', file, '--json'], { cwd: dir, encoding: 'utf8' });
    expect(run.status).toBe(1);
    const cli = JSON.parse(run.stdout);
    const c = await startClient({ root: dir });
    try {
      const { uri } = await c.open(file, text);
      const got = await c.nextDiagnostics(uri);
      expect(got.diagnostics).toHaveLength(cli.diagnostics.length);
      cli.diagnostics.forEach((want: { code: string; message: string; hint?: string; span: { start: { line: number; col: number }; end: { line: number; col: number } } }, i: number) => {
        const d = got.diagnostics[i] as Diagnostic;
        expect(d.code).toBe(want.code);
        expect(String(d.message).split('\n')[0]).toBe(want.message);
        if (want.hint) expect(String(d.message)).toContain(want.hint);
        expect(d.range).toEqual({ start: { line: want.span.start.line - 1, character: want.span.start.col - 1 }, end: { line: want.span.end.line - 1, character: want.span.end.col - 1 } });
      });
      expect(cli.diagnostics[0].code).toBe('SORA2001');
    } finally {
      c.close();
    }
  }, 60_000);
});

describe('sorac.json: the workspace config', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sorac-lsp-ws-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('hovers and diagnostics follow the config it chooses, per workspace and per file', async () => {
    writeFileSync(join(dir, 'a.sora'), STDIT3);
    writeFileSync(join(dir, 'b.sora'), STDIT3);
    writeFileSync(join(dir, 'small.json'), JSON.stringify({ hidden_size: 64, num_heads: 4 }));
    writeFileSync(join(dir, 'sorac.json'), JSON.stringify({ config: 'small.json', set: { depth: 2 }, files: { 'b.sora': { set: { depth: 3 } } } }));
    const c = await startClient({ root: dir });
    try {
      const a = await c.open(join(dir, 'a.sora'));
      const b = await c.open(join(dir, 'b.sora'));
      const h = async (u: string, needle: string, delta: number) => hoverText((await c.conn.sendRequest('textDocument/hover', { textDocument: { uri: u }, position: positionOf(STDIT3, needle, 0, delta) })) as Hover | null);
      const depthA = await h(a.uri, 'range(depth)', 7);
      expect(depthA).toContain('depth: int = 2');
      expect(depthA).toContain('--set depth=2');
      expect(await h(b.uri, 'range(depth)', 7)).toContain('depth: int = 3');
      expect(await h(a.uri, 'let mods', 5)).toContain('mods: f32[B, 6, 64]');
      expect(await h(a.uri, 'hidden_size: int = 1152', 1)).toContain('config file small.json');
    } finally {
      c.close();
    }
  }, 60_000);

  it('a broken sorac.json is a SORA7080 diagnostic on the document, which is checked with the defaults', async () => {
    writeFileSync(join(dir, 'sorac.json'), '{"config": ');
    const c = await startClient({ root: dir });
    try {
      const { uri } = await c.open(join(dir, 'a.sora'));
      const d = await c.nextDiagnostics(uri);
      expect(d.diagnostics.map((x) => x.code)).toEqual(['SORA7080']);
      expect(d.diagnostics[0]!.message).toMatch(/^sorac\.json: not valid JSON/);
    } finally {
      c.close();
    }
  }, 60_000);
});
