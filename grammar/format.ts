/**
 * `sorac fmt`: canonical formatting of .sora sources. Prints the AST with fixed spacing,
 * two-space indentation, minimal parentheses, at most one blank line between items (kept
 * where the source had one), and every comment preserved (leading comments stay above the
 * item they precede, end-of-line comments stay on their line). Idempotent by construction.
 */
import type * as A from './ast.ts';
import { parse } from './parser.ts';

const PREC: Record<string, number> = { or: 2, and: 3, '==': 5, '!=': 5, '<': 5, '<=': 5, '>': 5, '>=': 5, is: 5, 'is not': 5, in: 5, '+': 6, '-': 6, '*': 7, '/': 7, '//': 7, '%': 7, '@': 7, '**': 9 };

function prec(e: A.Expr): number {
  switch (e.kind) {
    case 'ternary': return 1;
    case 'binary': return PREC[e.op]!;
    case 'unary': return e.op === 'not' ? 4 : 8;
    default: return 11;
  }
}

export function formatExpr(e: A.Expr): string {
  switch (e.kind) {
    case 'num': return e.raw;
    case 'str': return JSON.stringify(e.value);
    case 'bool': return e.value ? 'true' : 'false';
    case 'none': return 'none';
    case 'name': return e.name;
    case 'list': return `[${e.items.map(formatExpr).join(', ')}]`;
    case 'tuple': return e.items.length === 1 ? `(${formatExpr(e.items[0]!)},)` : `(${e.items.map(formatExpr).join(', ')})`;
    case 'comp': return `[${formatExpr(e.element)} for ${e.name.name} in ${formatExpr(e.iter)}]`;
    case 'ternary': return `${wrap(e.cond, 2)} ? ${formatExpr(e.then)} : ${wrap(e.else, 1)}`;
    case 'unary': return e.op === 'not' ? `not ${wrap(e.operand, 4)}` : `${e.op}${wrap(e.operand, 8)}`;
    case 'binary': {
      const p = PREC[e.op]!;
      if (e.op === '**') return `${wrap(e.left, 10)} ** ${wrap(e.right, 8)}`;
      // comparisons do not chain in .sora's evaluation the Python way: keep explicit parentheses
      const rp = p === 5 ? p + 1 : p + 1;
      return `${wrap(e.left, p === 5 ? p + 1 : p)} ${e.op} ${wrap(e.right, rp)}`;
    }
    case 'call': return `${wrap(e.callee, 10)}(${e.args.map((a) => (a.name ? `${a.name.name}=${formatExpr(a.value)}` : formatExpr(a.value))).join(', ')})`;
    case 'member': return `${wrap(e.object, 10)}.${e.name.name}`;
    case 'index': return `${wrap(e.object, 10)}[${e.items.map(formatIndex).join(', ')}]`;
  }
}

function wrap(e: A.Expr, min: number): string {
  const s = formatExpr(e);
  return prec(e) < min ? `(${s})` : s;
}

function formatIndex(it: A.IndexItem): string {
  switch (it.kind) {
    case 'ellipsis': return '...';
    case 'newaxis': return 'none';
    case 'at': return formatExpr(it.index);
    case 'slice': {
      let s = `${it.start ? formatExpr(it.start) : ''}:${it.stop ? formatExpr(it.stop) : ''}`;
      if (it.step) s += `:${formatExpr(it.step)}`;
      return s;
    }
  }
}

export function formatType(t: A.TypeExpr): string {
  const dims = t.dims ? `[${t.dims.map((d) => (d.kind === 'ellipsis' ? '...' : d.kind === 'wildcard' ? '_' : formatExpr(d))).join(', ')}]` : '';
  return `${t.name?.name ?? ''}${dims}${t.optional ? '?' : ''}`;
}

function formatParam(p: A.Param): string {
  return `${p.name.name}${p.type ? `: ${formatType(p.type)}` : ''}${p.default ? ` = ${formatExpr(p.default)}` : ''}`;
}

function formatPath(p: A.Path): string {
  return p.segments.map((s) => s.name).join('.');
}

class Printer {
  private out: string[] = [];
  private ci = 0;
  private lastLine = 0;
  constructor(private readonly comments: readonly A.Comment[]) {}

  private emit(indent: number, text: string) {
    this.out.push(text ? '  '.repeat(indent) + text : '');
  }

  /** Emit leading comments before `offset`, and a blank line if the source had one. */
  private lead(indent: number, span: { start: { offset: number; line: number } }, first: boolean) {
    let firstLine = span.start.line;
    const pending: A.Comment[] = [];
    while (this.ci < this.comments.length && this.comments[this.ci]!.span.start.offset < span.start.offset) pending.push(this.comments[this.ci++]!);
    if (pending.length) firstLine = pending[0]!.span.start.line;
    if (!first && this.lastLine && firstLine > this.lastLine + 1) this.emit(0, '');
    let prev = pending.length ? pending[0]!.span.start.line : 0;
    for (const c of pending) {
      if (c.span.start.line > prev + 1) this.emit(0, '');
      this.emit(indent, c.text.trimEnd());
      prev = c.span.start.line;
    }
    if (pending.length && span.start.line > prev + 1) this.emit(0, '');
  }

  /** Append an end-of-line comment on the node's last line. */
  private trail(endLine: number) {
    while (this.ci < this.comments.length && this.comments[this.ci]!.span.start.line === endLine) {
      this.out[this.out.length - 1] += '  ' + this.comments[this.ci++]!.text.trimEnd();
    }
    this.lastLine = endLine;
  }

  /** Comments left inside a block before its closing brace. */
  private closeBlock(indent: number, endOffset: number) {
    let prev = this.lastLine;
    while (this.ci < this.comments.length && this.comments[this.ci]!.span.start.offset < endOffset) {
      const c = this.comments[this.ci++]!;
      if (prev && c.span.start.line > prev + 1) this.emit(0, '');
      this.emit(indent, c.text.trimEnd());
      prev = c.span.start.line;
      this.lastLine = prev;
    }
  }

  file(f: A.SourceFile): string {
    let prevKind: string | undefined;
    f.decls.forEach((d, i) => {
      const blank = i > 0 && !(d.kind === 'import' && prevKind === 'import');
      if (blank) {
        this.lead(0, d.span, true);
        if (this.out.length && this.out[this.out.length - 1] !== '' && !(this.out.length >= 1 && this.out[this.out.length - 1]!.startsWith('#'))) this.out.splice(this.out.length, 0);
      } else this.lead(0, d.span, i === 0);
      if (blank && this.out.length && this.out[this.out.length - 1] !== '') {
        // ensure exactly one blank line between top-level declarations (before their leading comments)
        let j = this.out.length;
        while (j > 0 && this.out[j - 1]!.startsWith('#')) j--;
        if (j > 0 && this.out[j - 1] !== '') this.out.splice(j, 0, '');
      }
      this.decl(d, 0);
      prevKind = d.kind;
    });
    this.closeBlock(0, Infinity);
    while (this.out.length && this.out[this.out.length - 1] === '') this.out.pop();
    return this.out.join('\n') + '\n';
  }

  private decl(d: A.Decl, ind: number) {
    switch (d.kind) {
      case 'import':
        this.emit(ind, `import { ${d.names.map((n) => n.name).join(', ')} } from ${JSON.stringify(d.from.value)}`);
        this.trail(d.span.end.line);
        return;
      case 'module': {
        const head = `${d.isModel ? 'model' : 'module'} ${d.name.name}${d.params.length || !d.isModel ? `(${d.params.map(formatParam).join(', ')})` : ''}${d.version ? ` version ${JSON.stringify(d.version.value)}` : ''} {`;
        this.emit(ind, head);
        this.trail(d.name.span.end.line);
        d.members.forEach((m, i) => {
          this.lead(ind + 1, m.span, i === 0);
          this.member(m, ind + 1);
        });
        this.closeBlock(ind + 1, d.span.end.offset - 1);
        this.emit(ind, '}');
        this.trail(d.span.end.line);
        return;
      }
      case 'pipeline': {
        this.emit(ind, `pipeline ${d.name.name}${d.version ? ` version ${JSON.stringify(d.version.value)}` : ''} {`);
        this.trail(d.name.span.end.line);
        d.members.forEach((m, i) => {
          this.lead(ind + 1, m.span, i === 0);
          if (m.kind === 'component') {
            this.emit(ind + 1, `${m.name.name} = ${formatExpr(m.value)}${m.from ? ` from ${JSON.stringify(m.from.value)}` : ''}`);
            this.trail(m.span.end.line);
          } else this.member(m, ind + 1);
        });
        this.closeBlock(ind + 1, d.span.end.offset - 1);
        this.emit(ind, '}');
        this.trail(d.span.end.line);
        return;
      }
      case 'fn':
        this.fn(d, ind);
        return;
      case 'let':
        this.stmt(d, ind);
        return;
    }
  }

  private member(m: A.Member, ind: number) {
    switch (m.kind) {
      case 'config':
      case 'dtype': {
        this.emit(ind, `${m.kind} {`);
        this.trail(m.span.start.line);
        const items = m.kind === 'config' ? m.fields : m.rules;
        items.forEach((it, i) => {
          this.lead(ind + 1, it.span, i === 0);
          this.emit(ind + 1, 'key' in it ? `${it.key.name}: ${formatExpr(it.value)}` : formatParam(it));
          this.trail(it.span.end.line);
        });
        this.closeBlock(ind + 1, m.span.end.offset - 1);
        this.emit(ind, '}');
        this.trail(m.span.end.line);
        return;
      }
      case 'upstream': {
        this.emit(ind, 'upstream {');
        this.trail(m.span.start.line);
        m.rules.forEach((r, i) => {
          this.lead(ind + 1, r.span, i === 0);
          this.emit(ind + 1, `${r.verdict} ${r.key.name}${r.value ? ` = ${formatExpr(r.value)}` : ''} ${JSON.stringify(r.reason.value)}`);
          this.trail(r.span.end.line);
        });
        this.closeBlock(ind + 1, m.span.end.offset - 1);
        this.emit(ind, '}');
        this.trail(m.span.end.line);
        return;
      }
      case 'param':
      case 'buffer':
        this.emit(ind, `${m.kind} ${formatPath(m.path)}: ${m.dtype ? m.dtype.name + ' ' : ''}[${m.shape.map(formatExpr).join(', ')}]${m.cond ? ` if ${formatExpr(m.cond)}` : ''}`);
        this.trail(m.span.end.line);
        return;
      case 'alias':
        this.emit(ind, `alias ${formatPath(m.path)} = ${formatPath(m.target)}`);
        this.trail(m.span.end.line);
        return;
      case 'sub':
        this.emit(ind, `${formatPath(m.path)} = ${formatExpr(m.value)}${m.cond ? ` if ${formatExpr(m.cond)}` : ''}`);
        this.trail(m.span.end.line);
        return;
      case 'fn':
        this.fn(m, ind);
        return;
      default:
        this.stmt(m, ind);
    }
  }

  private fn(f: A.FnDecl, ind: number) {
    const ret = f.ret ? ` -> ${f.ret.length === 1 && !f.ret[0]!.name ? formatType(f.ret[0]!.type) : `(${f.ret.map((r) => (r.name ? `${r.name.name}: ` : '') + formatType(r.type)).join(', ')})`}` : '';
    this.emit(ind, `${f.entry ? 'entry' : 'fn'} ${f.name.name}(${f.params.map(formatParam).join(', ')})${ret} {`);
    this.trail(f.body.span.start.line);
    this.block(f.body, ind);
  }

  private block(b: A.Block, ind: number) {
    b.stmts.forEach((s, i) => {
      this.lead(ind + 1, s.span, i === 0);
      this.stmt(s, ind + 1);
    });
    this.closeBlock(ind + 1, b.span.end.offset - 1);
    this.emit(ind, '}');
    this.trail(b.span.end.line);
  }

  private stmt(s: A.Stmt, ind: number) {
    switch (s.kind) {
      case 'let':
        this.emit(ind, `let ${s.destructure ? `(${s.names.map((n) => n.name).join(', ')})` : s.names[0]!.name} = ${formatExpr(s.value)}`);
        this.trail(s.span.end.line);
        return;
      case 'assign':
        this.emit(ind, `${s.target.name} ${s.op} ${formatExpr(s.value)}`);
        this.trail(s.span.end.line);
        return;
      case 'return':
        this.emit(ind, `return ${s.values.map(formatExpr).join(', ')}`);
        this.trail(s.span.end.line);
        return;
      case 'assert':
        this.emit(ind, `assert ${formatExpr(s.cond)}${s.message ? `, ${JSON.stringify(s.message.value)}` : ''}`);
        this.trail(s.span.end.line);
        return;
      case 'expr':
        this.emit(ind, formatExpr(s.expr));
        this.trail(s.span.end.line);
        return;
      case 'for':
        this.emit(ind, `for ${s.name.name} in ${formatExpr(s.iter)} {`);
        this.trail(s.body.span.start.line);
        this.block(s.body, ind);
        return;
      case 'if': {
        let head = `if ${formatExpr(s.cond)} {`;
        let cur: A.IfStmt = s;
        this.emit(ind, head);
        this.trail(cur.then.span.start.line);
        for (;;) {
          this.blockBody(cur.then, ind);
          const e = cur.else;
          if (!e) {
            this.emit(ind, '}');
            this.trail(cur.then.span.end.line);
            return;
          }
          if ('kind' in e && e.kind === 'if') {
            head = `} else if ${formatExpr(e.cond)} {`;
            this.emit(ind, head);
            this.trail(e.then.span.start.line);
            cur = e;
            continue;
          }
          this.emit(ind, '} else {');
          this.trail((e as A.Block).span.start.line);
          this.blockBody(e as A.Block, ind);
          this.emit(ind, '}');
          this.trail((e as A.Block).span.end.line);
          return;
        }
      }
    }
  }

  private blockBody(b: A.Block, ind: number) {
    b.stmts.forEach((st, i) => {
      this.lead(ind + 1, st.span, i === 0);
      this.stmt(st, ind + 1);
    });
    this.closeBlock(ind + 1, b.span.end.offset - 1);
  }
}

export interface FormatResult {
  readonly text?: string;
  readonly diagnostics: ReturnType<typeof parse>['diagnostics'];
}

/** Format .sora text. Refuses (returns diagnostics, no text) when the source has syntax errors. */
export function format(text: string, file = '<input>'): FormatResult {
  const r = parse(text, file);
  if (r.diagnostics.some((d) => d.severity === 'error')) return { diagnostics: r.diagnostics };
  return { text: new Printer(r.ast.comments).file(r.ast), diagnostics: r.diagnostics };
}

/** The AST without spans and comments, for structural comparison (fmt preserves the AST). */
export function stripSpans(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stripSpans);
  if (v && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (k !== 'span' && k !== 'comments' && k !== 'file' && k !== 'raw') o[k] = stripSpans(x);
    return o;
  }
  return v;
}
