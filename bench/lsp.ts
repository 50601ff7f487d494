/**
 * `sorac lsp` latency on examples/mmdit.sora (the largest bundled model), through the protocol, with
 * the server in-process (the code `sorac lsp` runs; only the stdio framing differs).
 *
 *   npx tsx bench/lsp.ts [--edits N] [--debounce MS]
 *
 * Per edit (a cycle of: a keystroke inside DoubleStreamBlock.forward that keeps the model valid (`dim=2` to
 * `dim=-2`), a typo
 * that makes it fail at trace time, and its fix): the time from sending didChange to receiving
 * publishDiagnostics for that version (including the debounce), and then a hover on `q` in
 * DoubleStreamBlock.forward (on the analysed version). Also a hover sent right after an edit, before its
 * diagnostics (it waits for the analysis of that version). Prints p50 / p95 / max in ms of wall time, and
 * the process's CPU time per edit (user + system, GC threads included), which a loaded machine does not
 * inflate the way it inflates wall time.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { positionOf, ROOT, startClient } from '../tests/lsp/client.ts';

const arg = (name: string, d: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};
const EDITS = arg('--edits', 60);
const DEBOUNCE = arg('--debounce', 25);

const file = join(ROOT, 'examples/mmdit.sora');
const base = readFileSync(file, 'utf8');
const anchor = '    let q = concat([txt_q, img_q], dim=2)';
if (!base.includes(anchor)) throw new Error('examples/mmdit.sora changed: update the anchor line in bench/lsp.ts');
const variants = [
  base.replace(anchor, '    let q = concat([txt_q, img_q], dim=-2)'), // a keystroke that changes the AST, still valid
  base.replace(anchor, '    let q = concat([txt_q, img_qq], dim=2)'), // a typo: SORA2001 at trace time
  base, // fixed again
];

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;
const row = (name: string, xs: number[]) => console.log(`${name.padEnd(44)} n=${String(xs.length).padStart(3)}  p50 ${pct(xs, 50).toFixed(1).padStart(6)}  p95 ${pct(xs, 95).toFixed(1).padStart(6)}  max ${Math.max(...xs).toFixed(1).padStart(6)}`);

const c = await startClient({ debounceMs: DEBOUNCE });
const t0 = performance.now();
const first = c.nextDiagnostics(`file://${file}`);
const { uri } = await c.open(file, base);
await first;
console.log(`mmdit.sora: first analysis (cold process) ${(performance.now() - t0).toFixed(0)} ms; debounce ${DEBOUNCE} ms; ${EDITS} edits`);

const diag: number[] = [];
const diagCpu: number[] = [];
const hover: number[] = [];
const hoverAfterEdit: number[] = [];
let version = 1;
for (let i = 0; i < EDITS; i++) {
  const text = variants[i % variants.length]!;
  version++;
  const t = performance.now();
  const cpu = process.cpuUsage();
  const got = c.nextDiagnostics(uri, version);
  c.change(uri, version, text);
  const d = await got;
  diag.push(performance.now() - t);
  const used = process.cpuUsage(cpu);
  diagCpu.push((used.user + used.system) / 1000);
  const typo = text.includes('img_qq');
  if (typo !== d.diagnostics.some((x) => x.code === 'SORA2001')) throw new Error(`edit ${i}: unexpected diagnostics ${JSON.stringify(d.diagnostics.map((x) => x.code))}`);
  const h0 = performance.now();
  const h = await c.conn.sendRequest('textDocument/hover', { textDocument: { uri }, position: positionOf(text, 'let q = concat', 0, 4) });
  hover.push(performance.now() - h0);
  if (!typo && !JSON.stringify(h).includes('q: f32[')) throw new Error(`edit ${i}: hover gave ${JSON.stringify(h)}`);
}
// a hover sent together with the edit: it answers for the new version
for (let i = 0; i < Math.min(EDITS, 30); i++) {
  const text = variants[(i % 2) * 2]!; // valid variants only
  version++;
  const t = performance.now();
  c.change(uri, version, text);
  const h = await c.conn.sendRequest('textDocument/hover', { textDocument: { uri }, position: positionOf(text, 'let q = concat', 0, 4) });
  hoverAfterEdit.push(performance.now() - t);
  if (!JSON.stringify(h).includes('q: f32[')) throw new Error(`hover after edit ${i}: ${JSON.stringify(h)}`);
}
row('diagnostics after an edit (didChange -> publish)', diag);
row('  the same, CPU time of the process (ms)', diagCpu);
row('hover (analysed version)', hover);
row('hover sent with the edit (waits for analysis)', hoverAfterEdit);
c.close();
