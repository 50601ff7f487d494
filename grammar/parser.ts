/**
 * .sora parser: chevrotain EmbeddedActionsParser building the AST directly, with error
 * recovery so several syntax errors are reported at once. Pure: text in, AST + diagnostics out.
 *
 * Why one file of ~800 lines: chevrotain rules are methods of one parser class (its grammar recorder
 * needs every rule on the instance), and the AST-building actions belong next to the rule they finish.
 */
import { EmbeddedActionsParser, type IToken, type TokenType, EOF } from 'chevrotain';
import type { Diagnostic, Span } from '../core/diagnostics.ts';
import { diag } from '../core/diagnostics.ts';
import { limit, LIMITS } from '../core/limits.ts';
import type * as A from './ast.ts';
import * as T from './lexer.ts';

const MAX_SOURCE = 2 * 1024 * 1024;
const MAX_NESTING = 128;
const MAX_ERRORS = 50;

class SoraParser extends EmbeddedActionsParser {
  file = '<input>';

  /**
   * `validate`: run chevrotain's grammar validations (ambiguities, left recursion) in
   * performSelfAnalysis. They depend only on the grammar, not the input, and cost about half the
   * parser's construction at each CLI start, so the shared parser skips them and
   * tests/properties.test.ts runs them (validateGrammar).
   */
  constructor(validate = false) {
    super(T.allTokens, { recoveryEnabled: true, maxLookahead: 3, skipValidations: !validate });
    this.performSelfAnalysis();
  }

  // ---- span helpers -------------------------------------------------------------------------
  private sp(start: IToken, end?: IToken): Span {
    const e = end && !isNaN(end.startOffset) ? end : start;
    return {
      file: this.file,
      start: { offset: start.startOffset, line: start.startLine ?? 1, col: start.startColumn ?? 1 },
      end: { offset: (e.endOffset ?? e.startOffset) + 1, line: e.endLine ?? e.startLine ?? 1, col: (e.endColumn ?? e.startColumn ?? 0) + 1 },
    };
  }
  private join(a: Span, b: Span): Span {
    return { file: a.file, start: a.start, end: b.end };
  }
  private last(): IToken {
    return this.LA(0);
  }
  private ident(tok: IToken): A.Ident {
    return { name: tok.image, span: this.sp(tok) };
  }

  // ---- file ---------------------------------------------------------------------------------
  public sourceFile = this.RULE('sourceFile', (): A.Decl[] => {
    const decls: A.Decl[] = [];
    this.MANY(() => {
      const d = this.OR([
        { ALT: () => this.SUBRULE(this.importDecl) },
        { GATE: () => this.LA(1).image === 'pipeline' && this.LA(2).tokenType === T.Ident, ALT: () => this.SUBRULE(this.pipelineDecl) },
        { ALT: () => this.SUBRULE(this.moduleDecl) },
        { ALT: () => this.SUBRULE(this.fnDecl) },
        { ALT: () => this.SUBRULE(this.letStmt) },
      ]);
      this.OPTION(() => this.CONSUME(T.Semi));
      this.ACTION(() => d && decls.push(d));
    });
    return decls;
  });

  private importDecl = this.RULE('importDecl', (): A.ImportDecl => {
    const start = this.CONSUME(T.Kw.import);
    this.CONSUME(T.LBrace);
    const names: A.Ident[] = [];
    this.AT_LEAST_ONE_SEP({ SEP: T.Comma, DEF: () => { const t = this.CONSUME(T.Ident); this.ACTION(() => names.push(this.ident(t))); } });
    this.CONSUME(T.RBrace);
    this.CONSUME(T.Kw.from);
    const s = this.CONSUME(T.Str);
    return this.ACTION(() => ({ kind: 'import' as const, names, from: strLit(s, this.sp(s)), span: this.sp(start, this.last()) }));
  });

  private moduleDecl = this.RULE('moduleDecl', (): A.ModuleDecl => {
    let isModel = false;
    const start = this.OR([
      { ALT: () => this.CONSUME(T.Kw.module) },
      { ALT: () => { const t = this.CONSUME(T.Kw.model); isModel = true; return t; } },
    ]);
    const name = this.CONSUME(T.Ident);
    let version: A.StrLit | undefined;
    let params: A.Param[] = [];
    this.OPTION(() => {
      this.CONSUME(T.LParen);
      params = this.SUBRULE(this.paramList);
      this.CONSUME(T.RParen);
    });
    this.OPTION2(() => {
      const v = this.CONSUME2(T.Ident); // contextual keyword `version`
      const s = this.CONSUME(T.Str);
      this.ACTION(() => {
        if (v.image !== 'version') throw new Error('expected version');
        version = strLit(s, this.sp(s));
      });
    });
    this.CONSUME(T.LBrace);
    const members: A.Member[] = [];
    this.MANY(() => {
      const m = this.SUBRULE(this.member);
      this.OPTION3(() => this.CONSUME(T.Semi));
      this.ACTION(() => m && members.push(m));
    });
    this.CONSUME(T.RBrace);
    return this.ACTION(() => ({ kind: 'module' as const, isModel, name: this.ident(name), ...(version ? { version } : {}), params, members, span: this.sp(start, this.last()) }));
  });

  // ---- pipelines ------------------------------------------------------------------------------
  private pipelineDecl = this.RULE('pipelineDecl', (): A.PipelineDecl => {
    const start = this.CONSUME(T.Ident); // contextual keyword `pipeline`
    const name = this.CONSUME2(T.Ident);
    let version: A.StrLit | undefined;
    this.OPTION(() => {
      const v = this.CONSUME3(T.Ident); // contextual keyword `version`
      const s = this.CONSUME(T.Str);
      this.ACTION(() => {
        if (v.image !== 'version') throw new Error('expected version');
        version = strLit(s, this.sp(s));
      });
    });
    this.CONSUME(T.LBrace);
    const members: A.PipelineMember[] = [];
    this.MANY(() => {
      const m = this.OR([
        { GATE: () => this.LA(1).image === 'config' && this.LA(2).tokenType === T.LBrace, ALT: () => this.SUBRULE(this.configBlock) },
        { ALT: () => this.SUBRULE(this.letStmt) },
        { ALT: () => this.SUBRULE(this.assertStmt) },
        { ALT: () => this.SUBRULE(this.componentDecl) },
      ]);
      this.OPTION2(() => this.CONSUME(T.Semi));
      this.ACTION(() => m && members.push(m));
    });
    this.CONSUME(T.RBrace);
    return this.ACTION(() => ({ kind: 'pipeline' as const, name: this.ident(name), ...(version ? { version } : {}), members, span: this.sp(start, this.last()) }));
  });

  private componentDecl = this.RULE('componentDecl', (): A.ComponentDecl => {
    const name = this.CONSUME(T.Ident);
    this.CONSUME(T.Eq);
    const value = this.SUBRULE(this.expr);
    let from: A.StrLit | undefined;
    this.OPTION(() => {
      this.CONSUME(T.Kw.from);
      const s = this.CONSUME(T.Str);
      this.ACTION(() => (from = strLit(s, this.sp(s))));
    });
    return this.ACTION(() => ({ kind: 'component' as const, name: this.ident(name), value, ...(from ? { from } : {}), span: this.sp(name, this.last()) }));
  });

  private paramList = this.RULE('paramList', (): A.Param[] => {
    const ps: A.Param[] = [];
    this.MANY_SEP({ SEP: T.Comma, DEF: () => { const p = this.SUBRULE(this.param); this.ACTION(() => p && ps.push(p)); } });
    return ps;
  });

  private param = this.RULE('param', (): A.Param => {
    const name = this.CONSUME(T.Ident);
    let type: A.TypeExpr | undefined;
    let def: A.Expr | undefined;
    this.OPTION(() => {
      this.CONSUME(T.Colon);
      type = this.SUBRULE(this.typeExpr);
    });
    this.OPTION2(() => {
      this.CONSUME(T.Eq);
      def = this.SUBRULE(this.expr);
    });
    return this.ACTION(() => ({ name: this.ident(name), ...(type ? { type } : {}), ...(def ? { default: def } : {}), span: this.sp(name, this.last()) }));
  });

  private typeExpr = this.RULE('typeExpr', (): A.TypeExpr => {
    const start = this.LA(1);
    let name: A.Ident | undefined;
    let dims: A.DimSpec[] | undefined;
    let optional = false;
    this.OR([
      {
        ALT: () => {
          const t = this.CONSUME(T.Ident);
          this.ACTION(() => (name = this.ident(t)));
          this.OPTION(() => (dims = this.SUBRULE(this.dimList)));
        },
      },
      { ALT: () => { dims = this.SUBRULE2(this.dimList); } },
    ]);
    this.OPTION2(() => {
      this.CONSUME(T.Question);
      optional = true;
    });
    return this.ACTION(() => ({ kind: 'type' as const, ...(name ? { name } : {}), ...(dims ? { dims } : {}), optional, span: this.sp(start, this.last()) }));
  });

  private dimList = this.RULE('dimList', (): A.DimSpec[] => {
    const dims: A.DimSpec[] = [];
    this.CONSUME(T.LBrack);
    this.MANY_SEP({
      SEP: T.Comma,
      DEF: () => {
        const d = this.OR([
          { ALT: () => { const t = this.CONSUME(T.Ellipsis); return this.ACTION(() => ({ kind: 'ellipsis' as const, span: this.sp(t) })); } },
          { GATE: () => this.LA(1).image === '_' && (this.LA(2).tokenType === T.Comma || this.LA(2).tokenType === T.RBrack), ALT: () => { const t = this.CONSUME(T.Ident); return this.ACTION(() => ({ kind: 'wildcard' as const, span: this.sp(t) })); } },
          { ALT: () => this.SUBRULE(this.expr) },
        ]);
        this.ACTION(() => d && dims.push(d));
      },
    });
    this.CONSUME(T.RBrack);
    return dims;
  });

  // ---- module members -------------------------------------------------------------------------
  private member = this.RULE('member', (): A.Member => {
    return this.OR([
      { GATE: () => this.LA(1).image === 'config' && this.LA(2).tokenType === T.LBrace, ALT: () => this.SUBRULE(this.configBlock) },
      { GATE: () => this.LA(1).image === 'dtype' && this.LA(2).tokenType === T.LBrace, ALT: () => this.SUBRULE(this.dtypeBlock) },
      { GATE: () => this.LA(1).image === 'upstream' && this.LA(2).tokenType === T.LBrace, ALT: () => this.SUBRULE(this.upstreamBlock) },
      { ALT: () => this.SUBRULE(this.tensorDecl) },
      { GATE: () => this.LA(1).image === 'alias' && this.LA(2).tokenType === T.Ident, ALT: () => this.SUBRULE(this.aliasDecl) },
      { ALT: () => this.SUBRULE(this.letStmt) },
      { ALT: () => this.SUBRULE(this.assertStmt) },
      { ALT: () => this.SUBRULE(this.fnDecl) },
      { ALT: () => this.SUBRULE(this.subDecl) },
    ]);
  });

  private configBlock = this.RULE('configBlock', (): A.ConfigBlock => {
    const start = this.CONSUME(T.Ident);
    this.CONSUME(T.LBrace);
    const fields: A.Param[] = [];
    this.MANY(() => {
      const p = this.SUBRULE(this.param);
      this.OPTION(() => this.OR([{ ALT: () => this.CONSUME(T.Semi) }, { ALT: () => this.CONSUME(T.Comma) }]));
      this.ACTION(() => p && fields.push(p));
    });
    this.CONSUME(T.RBrace);
    return this.ACTION(() => ({ kind: 'config' as const, fields, span: this.sp(start, this.last()) }));
  });

  private dtypeBlock = this.RULE('dtypeBlock', (): A.DtypeBlock => {
    const start = this.CONSUME(T.Ident);
    this.CONSUME(T.LBrace);
    const rules: A.DtypeRule[] = [];
    this.MANY(() => {
      const k = this.CONSUME2(T.Ident);
      this.CONSUME(T.Colon);
      const v = this.SUBRULE(this.expr);
      this.OPTION(() => this.OR([{ ALT: () => this.CONSUME(T.Semi) }, { ALT: () => this.CONSUME(T.Comma) }]));
      this.ACTION(() => rules.push({ key: this.ident(k), value: v, span: this.sp(k, this.last()) }));
    });
    this.CONSUME(T.RBrace);
    return this.ACTION(() => ({ kind: 'dtype' as const, rules, span: this.sp(start, this.last()) }));
  });

  private upstreamBlock = this.RULE('upstreamBlock', (): A.UpstreamBlock => {
    const start = this.CONSUME(T.Ident);
    this.CONSUME(T.LBrace);
    const rules: A.UpstreamRule[] = [];
    this.MANY(() => {
      const verdict = this.CONSUME2(T.Ident); // contextual keyword: fixes | refuses
      const k = this.CONSUME3(T.Ident);
      let value: A.Expr | undefined;
      this.OPTION(() => {
        this.CONSUME(T.Eq);
        value = this.SUBRULE(this.expr);
      });
      const reason = this.CONSUME(T.Str);
      this.OPTION2(() => this.OR([{ ALT: () => this.CONSUME(T.Semi) }, { ALT: () => this.CONSUME(T.Comma) }]));
      this.ACTION(() => {
        if (verdict.image !== 'fixes' && verdict.image !== 'refuses') throw new Error('expected fixes or refuses');
        rules.push({ verdict: verdict.image, key: this.ident(k), ...(value ? { value } : {}), reason: strLit(reason, this.sp(reason)), span: this.sp(verdict, this.last()) });
      });
    });
    this.CONSUME(T.RBrace);
    return this.ACTION(() => ({ kind: 'upstream' as const, rules, span: this.sp(start, this.last()) }));
  });

  private path = this.RULE('path', (): A.Path => {
    const first = this.CONSUME(T.Ident);
    const segs: IToken[] = [first];
    this.MANY(() => {
      this.CONSUME(T.Dot);
      const s = this.OR([{ ALT: () => this.CONSUME2(T.Name) }, { ALT: () => this.CONSUME(T.Int) }]);
      this.ACTION(() => segs.push(s));
    });
    return this.ACTION(() => ({ segments: segs.map((t) => this.ident(t)), span: this.sp(first, this.last()) }));
  });

  private tensorDecl = this.RULE('tensorDecl', (): A.TensorDecl => {
    const start = this.OR([{ ALT: () => this.CONSUME(T.Kw.param) }, { ALT: () => this.CONSUME(T.Kw.buffer) }]);
    const path = this.SUBRULE(this.path);
    this.CONSUME(T.Colon);
    let dtype: A.Ident | undefined;
    this.OPTION(() => {
      const t = this.CONSUME(T.Ident);
      this.ACTION(() => (dtype = this.ident(t)));
    });
    this.CONSUME(T.LBrack);
    const shape: A.Expr[] = [];
    this.MANY_SEP({ SEP: T.Comma, DEF: () => { const e = this.SUBRULE(this.expr); this.ACTION(() => e && shape.push(e)); } });
    this.CONSUME(T.RBrack);
    let cond: A.Expr | undefined;
    this.OPTION2(() => {
      this.CONSUME(T.Kw.if);
      cond = this.SUBRULE2(this.expr);
    });
    return this.ACTION(() => ({
      kind: start.tokenType === T.Kw.param ? ('param' as const) : ('buffer' as const),
      path,
      shape,
      ...(dtype ? { dtype } : {}),
      ...(cond ? { cond } : {}),
      span: this.sp(start, this.last()),
    }));
  });

  private aliasDecl = this.RULE('aliasDecl', (): A.AliasDecl => {
    const start = this.CONSUME(T.Ident);
    const path = this.SUBRULE(this.path);
    this.CONSUME(T.Eq);
    const target = this.SUBRULE2(this.path);
    return this.ACTION(() => ({ kind: 'alias' as const, path, target, span: this.sp(start, this.last()) }));
  });

  private subDecl = this.RULE('subDecl', (): A.SubDecl => {
    const path = this.SUBRULE(this.path);
    this.CONSUME(T.Eq);
    const value = this.SUBRULE(this.expr);
    let cond: A.Expr | undefined;
    this.OPTION(() => {
      this.CONSUME(T.Kw.if);
      cond = this.SUBRULE2(this.expr);
    });
    return this.ACTION(() => ({ kind: 'sub' as const, path, value, ...(cond ? { cond } : {}), span: this.join(path.span, this.sp(this.last())) }));
  });

  private fnDecl = this.RULE('fnDecl', (): A.FnDecl => {
    const start = this.OR([{ ALT: () => this.CONSUME(T.Kw.fn) }, { ALT: () => this.CONSUME(T.Kw.entry) }]);
    const name = this.CONSUME(T.Ident);
    this.CONSUME(T.LParen);
    const params = this.SUBRULE(this.paramList);
    this.CONSUME(T.RParen);
    let ret: A.RetSpec[] | undefined;
    this.OPTION(() => {
      this.CONSUME(T.Arrow);
      ret = this.SUBRULE(this.retSpec);
    });
    const body = this.SUBRULE(this.block);
    return this.ACTION(() => ({ kind: 'fn' as const, entry: start.tokenType === T.Kw.entry, name: this.ident(name), params, ...(ret ? { ret } : {}), body, span: this.sp(start, this.last()) }));
  });

  private retSpec = this.RULE('retSpec', (): A.RetSpec[] => {
    const out: A.RetSpec[] = [];
    this.OR([
      {
        ALT: () => {
          this.CONSUME(T.LParen);
          this.AT_LEAST_ONE_SEP({ SEP: T.Comma, DEF: () => { const r = this.SUBRULE(this.retItem); this.ACTION(() => r && out.push(r)); } });
          this.CONSUME(T.RParen);
        },
      },
      { ALT: () => { const r = this.SUBRULE2(this.retItem); this.ACTION(() => r && out.push(r)); } },
    ]);
    return out;
  });

  private retItem = this.RULE('retItem', (): A.RetSpec => {
    const start = this.LA(1);
    let name: A.Ident | undefined;
    this.OPTION({
      GATE: () => this.LA(2).tokenType === T.Colon,
      DEF: () => {
        const t = this.CONSUME(T.Ident);
        this.CONSUME(T.Colon);
        this.ACTION(() => (name = this.ident(t)));
      },
    });
    const type = this.SUBRULE(this.typeExpr);
    return this.ACTION(() => ({ ...(name ? { name } : {}), type, span: this.sp(start, this.last()) }));
  });

  // ---- statements ---------------------------------------------------------------------------
  private block = this.RULE('block', (): A.Block => {
    const start = this.CONSUME(T.LBrace);
    const stmts: A.Stmt[] = [];
    this.MANY(() => {
      const s = this.SUBRULE(this.stmt);
      this.OPTION(() => this.CONSUME(T.Semi));
      this.ACTION(() => s && stmts.push(s));
    });
    this.CONSUME(T.RBrace);
    return this.ACTION(() => ({ stmts, span: this.sp(start, this.last()) }));
  });

  private stmt = this.RULE('stmt', (): A.Stmt => {
    return this.OR([
      { ALT: () => this.SUBRULE(this.letStmt) },
      { ALT: () => this.SUBRULE(this.ifStmt) },
      { ALT: () => this.SUBRULE(this.forStmt) },
      { ALT: () => this.SUBRULE(this.returnStmt) },
      { ALT: () => this.SUBRULE(this.assertStmt) },
      {
        GATE: () => this.LA(1).tokenType === T.Ident && [T.Eq, T.PlusEq, T.MinusEq, T.StarEq, T.SlashEq].includes(this.LA(2).tokenType),
        ALT: () => this.SUBRULE(this.assignStmt),
      },
      { ALT: () => this.SUBRULE(this.exprStmt) },
    ]);
  });

  private letStmt = this.RULE('letStmt', (): A.LetStmt => {
    const start = this.CONSUME(T.Kw.let);
    const names: A.Ident[] = [];
    let destructure = false;
    this.OR([
      {
        ALT: () => {
          this.CONSUME(T.LParen);
          destructure = true;
          this.AT_LEAST_ONE_SEP({ SEP: T.Comma, DEF: () => { const t = this.CONSUME(T.Ident); this.ACTION(() => names.push(this.ident(t))); } });
          this.CONSUME(T.RParen);
        },
      },
      { ALT: () => { const t = this.CONSUME2(T.Ident); this.ACTION(() => names.push(this.ident(t))); } },
    ]);
    this.CONSUME(T.Eq);
    const value = this.SUBRULE(this.expr);
    return this.ACTION(() => ({ kind: 'let' as const, names, destructure, value, span: this.sp(start, this.last()) }));
  });

  private assignStmt = this.RULE('assignStmt', (): A.AssignStmt => {
    const t = this.CONSUME(T.Ident);
    const op = this.OR([
      { ALT: () => this.CONSUME(T.Eq) },
      { ALT: () => this.CONSUME(T.PlusEq) },
      { ALT: () => this.CONSUME(T.MinusEq) },
      { ALT: () => this.CONSUME(T.StarEq) },
      { ALT: () => this.CONSUME(T.SlashEq) },
    ]);
    const value = this.SUBRULE(this.expr);
    return this.ACTION(() => ({ kind: 'assign' as const, target: this.ident(t), op: op.image as A.AssignStmt['op'], value, span: this.sp(t, this.last()) }));
  });

  private ifStmt = this.RULE('ifStmt', (): A.IfStmt => {
    const start = this.CONSUME(T.Kw.if);
    const cond = this.SUBRULE(this.expr);
    const then = this.SUBRULE(this.block);
    let els: A.Block | A.IfStmt | undefined;
    this.OPTION(() => {
      this.CONSUME(T.Kw.else);
      els = this.OR([{ ALT: () => this.SUBRULE(this.ifStmt) }, { ALT: () => this.SUBRULE2(this.block) }]);
    });
    return this.ACTION(() => ({ kind: 'if' as const, cond, then, ...(els ? { else: els } : {}), span: this.sp(start, this.last()) }));
  });

  private forStmt = this.RULE('forStmt', (): A.ForStmt => {
    const start = this.CONSUME(T.Kw.for);
    const name = this.CONSUME(T.Ident);
    this.CONSUME(T.Kw.in);
    const iter = this.SUBRULE(this.expr);
    const body = this.SUBRULE(this.block);
    return this.ACTION(() => ({ kind: 'for' as const, name: this.ident(name), iter, body, span: this.sp(start, this.last()) }));
  });

  private returnStmt = this.RULE('returnStmt', (): A.ReturnStmt => {
    const start = this.CONSUME(T.Kw.return);
    const values: A.Expr[] = [];
    this.AT_LEAST_ONE_SEP({ SEP: T.Comma, DEF: () => { const e = this.SUBRULE(this.expr); this.ACTION(() => e && values.push(e)); } });
    return this.ACTION(() => ({ kind: 'return' as const, values, span: this.sp(start, this.last()) }));
  });

  private assertStmt = this.RULE('assertStmt', (): A.AssertStmt => {
    const start = this.CONSUME(T.Kw.assert);
    const cond = this.SUBRULE(this.expr);
    let message: A.StrLit | undefined;
    this.OPTION(() => {
      this.CONSUME(T.Comma);
      const s = this.CONSUME(T.Str);
      this.ACTION(() => (message = strLit(s, this.sp(s))));
    });
    return this.ACTION(() => ({ kind: 'assert' as const, cond, ...(message ? { message } : {}), span: this.sp(start, this.last()) }));
  });

  private exprStmt = this.RULE('exprStmt', (): A.ExprStmt => {
    const e = this.SUBRULE(this.expr);
    return this.ACTION(() => ({ kind: 'expr' as const, expr: e, span: e.span }));
  });

  // ---- expressions --------------------------------------------------------------------------
  private expr = this.RULE('expr', (): A.Expr => {
    const cond = this.SUBRULE(this.orExpr);
    let res = cond;
    this.OPTION(() => {
      this.CONSUME(T.Question);
      const a = this.SUBRULE(this.expr);
      this.CONSUME(T.Colon);
      const b = this.SUBRULE2(this.expr);
      this.ACTION(() => (res = { kind: 'ternary', cond, then: a, else: b, span: this.join(cond.span, b.span) }));
    });
    return res;
  });

  private binLevel(name: string, next: () => (idx?: number) => A.Expr, ops: TokenType[]): (idx?: number) => A.Expr {
    return this.RULE(name, () => {
      let left = this.SUBRULE(next());
      this.MANY(() => {
        const op = this.OR(ops.map((t) => ({ ALT: () => this.CONSUME(t) })));
        const right = this.SUBRULE2(next());
        this.ACTION(() => (left = { kind: 'binary', op: op.image as A.BinaryOp, left, right, span: this.join(left.span, right.span) }));
      });
      return left;
    });
  }

  private orExpr: (idx?: number) => A.Expr = this.binLevel('orExpr', () => this.andExpr, [T.Kw.or]);
  private andExpr: (idx?: number) => A.Expr = this.binLevel('andExpr', () => this.notExpr, [T.Kw.and]);

  private notExpr = this.RULE('notExpr', (): A.Expr =>
    this.OR([
      {
        ALT: () => {
          const t = this.CONSUME(T.Kw.not);
          const e = this.SUBRULE(this.notExpr);
          return this.ACTION(() => ({ kind: 'unary' as const, op: 'not' as const, operand: e, span: this.join(this.sp(t), e.span) }));
        },
      },
      { ALT: () => this.SUBRULE(this.cmpExpr) },
    ]),
  );

  private cmpExpr = this.RULE('cmpExpr', (): A.Expr => {
    let left = this.SUBRULE(this.addExpr);
    this.MANY(() => {
      const op = this.OR([
        { ALT: () => this.CONSUME(T.EqEq).image },
        { ALT: () => this.CONSUME(T.NotEq).image },
        { ALT: () => this.CONSUME(T.LtEq).image },
        { ALT: () => this.CONSUME(T.GtEq).image },
        { ALT: () => this.CONSUME(T.Lt).image },
        { ALT: () => this.CONSUME(T.Gt).image },
        { ALT: () => this.CONSUME(T.Kw.in).image },
        {
          ALT: () => {
            this.CONSUME(T.Kw.is);
            let neg = false;
            this.OPTION(() => {
              this.CONSUME(T.Kw.not);
              neg = true;
            });
            return neg ? 'is not' : 'is';
          },
        },
      ]);
      const right = this.SUBRULE2(this.addExpr);
      this.ACTION(() => (left = { kind: 'binary', op: op as A.BinaryOp, left, right, span: this.join(left.span, right.span) }));
    });
    return left;
  });

  private addExpr: (idx?: number) => A.Expr = this.binLevel('addExpr', () => this.mulExpr, [T.Plus, T.Minus]);
  private mulExpr: (idx?: number) => A.Expr = this.binLevel('mulExpr', () => this.unaryExpr, [T.Star, T.Slash, T.FloorDiv, T.Percent, T.At]);

  private unaryExpr = this.RULE('unaryExpr', (): A.Expr =>
    this.OR([
      {
        ALT: () => {
          const t = this.OR2([{ ALT: () => this.CONSUME(T.Minus) }, { ALT: () => this.CONSUME(T.Plus) }]);
          const e = this.SUBRULE(this.unaryExpr);
          return this.ACTION(() => ({ kind: 'unary' as const, op: t.image as '-' | '+', operand: e, span: this.join(this.sp(t), e.span) }));
        },
      },
      { ALT: () => this.SUBRULE(this.powExpr) },
    ]),
  );

  private powExpr = this.RULE('powExpr', (): A.Expr => {
    const base = this.SUBRULE(this.postfixExpr);
    let res = base;
    this.OPTION(() => {
      this.CONSUME(T.PowOp);
      const exp = this.SUBRULE(this.unaryExpr);
      this.ACTION(() => (res = { kind: 'binary', op: '**', left: base, right: exp, span: this.join(base.span, exp.span) }));
    });
    return res;
  });

  private postfixExpr = this.RULE('postfixExpr', (): A.Expr => {
    let e = this.SUBRULE(this.primary);
    this.MANY(() => {
      this.OR([
        {
          ALT: () => {
            this.CONSUME(T.LParen);
            const args: A.Arg[] = [];
            this.MANY_SEP({ SEP: T.Comma, DEF: () => { const a = this.SUBRULE(this.arg); this.ACTION(() => a && args.push(a)); } });
            this.CONSUME(T.RParen);
            this.ACTION(() => (e = { kind: 'call', callee: e, args, span: this.join(e.span, this.sp(this.last())) }));
          },
        },
        {
          ALT: () => {
            this.CONSUME(T.LBrack);
            const items: A.IndexItem[] = [];
            this.AT_LEAST_ONE_SEP2({ SEP: T.Comma, DEF: () => { const it = this.SUBRULE(this.indexItem); this.ACTION(() => it && items.push(it)); } });
            this.CONSUME(T.RBrack);
            this.ACTION(() => (e = { kind: 'index', object: e, items, span: this.join(e.span, this.sp(this.last())) }));
          },
        },
        {
          ALT: () => {
            this.CONSUME(T.Dot);
            const n = this.OR2([{ ALT: () => this.CONSUME(T.Name) }, { ALT: () => this.CONSUME(T.Int) }]);
            this.ACTION(() => (e = { kind: 'member', object: e, name: this.ident(n), span: this.join(e.span, this.sp(n)) }));
          },
        },
      ]);
    });
    return e;
  });

  private arg = this.RULE('arg', (): A.Arg => {
    const start = this.LA(1);
    let name: A.Ident | undefined;
    this.OPTION({
      GATE: () => this.LA(2).tokenType === T.Eq,
      DEF: () => {
        const t = this.CONSUME(T.Ident);
        this.CONSUME(T.Eq);
        this.ACTION(() => (name = this.ident(t)));
      },
    });
    const value = this.SUBRULE(this.expr);
    return this.ACTION(() => ({ ...(name ? { name } : {}), value, span: this.sp(start, this.last()) }));
  });

  private indexItem = this.RULE('indexItem', (): A.IndexItem => {
    const start = this.LA(1);
    return this.OR([
      { ALT: () => { this.CONSUME(T.Ellipsis); return this.ACTION(() => ({ kind: 'ellipsis' as const, span: this.sp(start) })); } },
      {
        GATE: () => this.LA(1).tokenType === T.Kw.none && (this.LA(2).tokenType === T.Comma || this.LA(2).tokenType === T.RBrack),
        ALT: () => { this.CONSUME(T.Kw.none); return this.ACTION(() => ({ kind: 'newaxis' as const, span: this.sp(start) })); },
      },
      {
        ALT: () => {
          let a: A.Expr | undefined;
          let b: A.Expr | undefined;
          let c: A.Expr | undefined;
          let isSlice = false;
          this.OPTION(() => (a = this.SUBRULE(this.expr)));
          this.OPTION2(() => {
            this.CONSUME(T.Colon);
            isSlice = true;
            this.OPTION3(() => (b = this.SUBRULE2(this.expr)));
            this.OPTION4(() => {
              this.CONSUME2(T.Colon);
              this.OPTION5(() => (c = this.SUBRULE3(this.expr)));
            });
          });
          return this.ACTION(() => {
            if (!isSlice && a) return { kind: 'at' as const, index: a, span: a.span };
            return { kind: 'slice' as const, ...(a ? { start: a } : {}), ...(b ? { stop: b } : {}), ...(c ? { step: c } : {}), span: this.sp(start, this.last()) };
          });
        },
      },
    ]);
  });

  private primary = this.RULE('primary', (): A.Expr =>
    this.OR([
      { ALT: () => { const t = this.CONSUME(T.Int); return this.ACTION(() => ({ kind: 'num' as const, value: Number(t.image), isInt: true, raw: t.image, span: this.sp(t) })); } },
      { ALT: () => { const t = this.CONSUME(T.Float); return this.ACTION(() => ({ kind: 'num' as const, value: Number(t.image), isInt: false, raw: t.image, span: this.sp(t) })); } },
      { ALT: () => { const t = this.CONSUME(T.Str); return this.ACTION(() => strLit(t, this.sp(t))); } },
      { ALT: () => { const t = this.CONSUME(T.Kw.true); return this.ACTION(() => ({ kind: 'bool' as const, value: true, span: this.sp(t) })); } },
      { ALT: () => { const t = this.CONSUME(T.Kw.false); return this.ACTION(() => ({ kind: 'bool' as const, value: false, span: this.sp(t) })); } },
      { ALT: () => { const t = this.CONSUME(T.Kw.none); return this.ACTION(() => ({ kind: 'none' as const, span: this.sp(t) })); } },
      { ALT: () => { const t = this.CONSUME(T.Ident); return this.ACTION(() => ({ kind: 'name' as const, name: t.image, span: this.sp(t) })); } },
      {
        ALT: () => {
          const start = this.CONSUME(T.LParen);
          const items: A.Expr[] = [];
          let trailingComma = false;
          const first = this.SUBRULE(this.expr);
          this.ACTION(() => items.push(first));
          this.MANY(() => {
            this.CONSUME(T.Comma);
            this.OPTION(() => { const e = this.SUBRULE2(this.expr); this.ACTION(() => items.push(e)); });
            trailingComma = true;
          });
          this.CONSUME(T.RParen);
          return this.ACTION(() => (items.length === 1 && !trailingComma ? first : { kind: 'tuple' as const, items, span: this.sp(start, this.last()) }));
        },
      },
      {
        ALT: () => {
          const start = this.CONSUME(T.LBrack);
          const items: A.Expr[] = [];
          let comp: { name: A.Ident; iter: A.Expr } | undefined;
          this.OPTION2(() => {
            const first = this.SUBRULE3(this.expr);
            this.ACTION(() => items.push(first));
            this.OR2([
              {
                ALT: () => {
                  this.CONSUME(T.Kw.for);
                  const n = this.CONSUME2(T.Ident);
                  this.CONSUME(T.Kw.in);
                  const iter = this.SUBRULE4(this.expr);
                  this.ACTION(() => (comp = { name: this.ident(n), iter }));
                },
              },
              {
                ALT: () => {
                  this.MANY2(() => {
                    this.CONSUME2(T.Comma);
                    this.OPTION3(() => { const e = this.SUBRULE5(this.expr); this.ACTION(() => items.push(e)); });
                  });
                },
              },
            ]);
          });
          this.CONSUME(T.RBrack);
          return this.ACTION(() =>
            comp ? { kind: 'comp' as const, element: items[0]!, name: comp.name, iter: comp.iter, span: this.sp(start, this.last()) } : { kind: 'list' as const, items, span: this.sp(start, this.last()) },
          );
        },
      },
    ]),
  );
}

function strLit(t: IToken, span: Span): A.StrLit {
  let value = t.image.slice(1, -1);
  try {
    value = JSON.parse(t.image);
  } catch {
    /* keep raw */
  }
  return { kind: 'str', value, span };
}

let parserInstance: SoraParser | undefined;
function parser(): SoraParser {
  return (parserInstance ??= new SoraParser());
}

/**
 * Build the lexer and a parser with chevrotain's validations on (the shared ones skip them); throws
 * on a token or grammar definition error.
 */
export function validateGrammar(): void {
  T.validateLexer();
  new SoraParser(true);
}

export interface ParseResult {
  readonly ast: A.SourceFile;
  readonly diagnostics: Diagnostic[];
}

function pointSpan(file: string, text: string, offset: number, length = 1): Span {
  let line = 1;
  let col = 1;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      col = 1;
    } else col++;
  }
  const end = Math.min(offset + Math.max(length, 1), Math.max(text.length, offset + 1));
  return { file, start: { offset, line, col }, end: { offset: end, line, col: col + (end - offset) } };
}

function tokenSpan(file: string, t: IToken): Span {
  return {
    file,
    start: { offset: t.startOffset, line: t.startLine ?? 1, col: t.startColumn ?? 1 },
    end: { offset: (t.endOffset ?? t.startOffset) + 1, line: t.endLine ?? 1, col: (t.endColumn ?? 0) + 1 },
  };
}

function describe(t: IToken): string {
  if (t.tokenType === EOF) return 'end of file';
  return JSON.stringify(t.image);
}

/** Parse .sora text. Never throws for any input; every diagnostic carries a valid span. */
export function parse(text: string, file = '<input>'): ParseResult {
  const diagnostics: Diagnostic[] = [];
  const empty: A.SourceFile = { kind: 'file', file, decls: [], comments: [], span: pointSpan(file, '', 0, 0) };
  if (text.length > MAX_SOURCE) {
    diagnostics.push(diag('SORA1004', `source is ${text.length} characters; the limit is ${MAX_SOURCE}`, pointSpan(file, text, 0), { hint: 'split the model into several files and import them' }));
    return { ast: empty, diagnostics };
  }
  const lexed = T.soraLexer.tokenize(text);
  for (const e of lexed.errors.slice(0, MAX_ERRORS)) {
    diagnostics.push(diag('SORA1001', `unexpected character ${JSON.stringify(text.substr(e.offset, Math.min(e.length, 10)))}`, pointSpan(file, text, e.offset, e.length), { hint: 'remove it; comments start with #' }));
  }
  const tokens: IToken[] = [];
  for (const t of lexed.tokens) {
    if (t.tokenType === T.UnterminatedStr) {
      diagnostics.push(diag('SORA1003', 'unterminated string', tokenSpan(file, t), { hint: 'close the string with " on the same line' }));
      continue;
    }
    tokens.push(t);
  }
  // nesting guard: the parser is recursive, so refuse pathological nesting up front
  let depth = 0;
  for (const t of tokens) {
    if (t.tokenType === T.LParen || t.tokenType === T.LBrack || t.tokenType === T.LBrace) {
      if (++depth > MAX_NESTING) {
        diagnostics.push(diag('SORA1004', `brackets nested more than ${MAX_NESTING} levels deep`, tokenSpan(file, t), { hint: 'simplify the expression with let bindings' }));
        return { ast: empty, diagnostics };
      }
    } else if (t.tokenType === T.RParen || t.tokenType === T.RBrack || t.tokenType === T.RBrace) depth = Math.max(0, depth - 1);
  }
  if (lexed.errors.length > MAX_ERRORS) {
    diagnostics.push(diag('SORA1001', `${lexed.errors.length - MAX_ERRORS} more lexical errors not shown (is this a .sora text file?)`, pointSpan(file, text, 0)));
    return { ast: empty, diagnostics };
  }
  const p = parser();
  p.file = file;
  p.input = tokens;
  let decls: A.Decl[] = [];
  try {
    decls = p.sourceFile() ?? [];
  } catch (e) {
    diagnostics.push(diag('SORA1002', `could not parse: ${(e as Error).message}`, pointSpan(file, text, 0)));
  }
  const seen = new Set<number>();
  for (const err of p.errors.slice(0, MAX_ERRORS)) {
    const t = err.token;
    const prev = (err as { previousToken?: IToken }).previousToken;
    const prevOk = prev && !isNaN(prev.startOffset);
    let span: Span;
    if (err.name === 'MismatchedTokenException' && prevOk && (t.tokenType === EOF || isNaN(t.startOffset) || (t.startLine ?? 0) > (prev.endLine ?? 0))) {
      // "expected ]" etc.: point just after the last good token, where the missing token belongs
      const end = (prev.endOffset ?? prev.startOffset) + 1;
      span = { file, start: { offset: end, line: prev.endLine ?? 1, col: (prev.endColumn ?? 0) + 1 }, end: { offset: end + 1, line: prev.endLine ?? 1, col: (prev.endColumn ?? 0) + 2 } };
    } else {
      const at = t.tokenType === EOF || isNaN(t.startOffset) ? (prevOk ? prev : undefined) : t;
      span = at ? tokenSpan(file, at) : pointSpan(file, text, Math.max(0, text.length - 1));
    }
    if (seen.has(span.start.offset)) continue;
    seen.add(span.start.offset);
    diagnostics.push(diag('SORA1002', `syntax error at ${describe(t)}: ${simplify(err.message)}`, span, { hint: hintFor(err.message) }));
  }
  // operator chains (`1+1+…`, `a.b.c…`, `f()()…`) nest without brackets; every later stage walks
  // expressions recursively, so refuse chains past the limit here, with the place and the fix
  const tooDeep = deepestOperatorChain(decls, limit('exprDepth'));
  if (tooDeep) {
    const info = LIMITS.exprDepth;
    diagnostics.push(
      diag('SORA1030', `expression nests more than ${limit('exprDepth')} operators (the limit exprDepth)`, tooDeep.span, {
        hint: `split it with let bindings (let a = …; let b = a + …); if it is really needed, raise the limit: ${info.env}=${limit('exprDepth') * 10}`,
      }),
    );
    return { ast: empty, diagnostics };
  }
  const comments: A.Comment[] = ((lexed.groups.comments as IToken[] | undefined) ?? []).map((c) => ({ text: c.image, span: tokenSpan(file, c) }));
  const end = pointSpan(file, text, text.length, 0);
  return { ast: { kind: 'file', file, decls: decls.filter(Boolean), comments, span: { file, start: { offset: 0, line: 1, col: 1 }, end: end.start } }, diagnostics };
}

const OPERATOR_KINDS = new Set(['binary', 'unary', 'ternary', 'call', 'member', 'index']);

/**
 * The first expression node nested under more than `max` operator nodes (iterative walk, depth-first
 * from the last declaration), if any. Nodes and their depths go on two parallel stacks, children in
 * property order: no allocation per node (this walks every AST node of every file parsed).
 */
function deepestOperatorChain(decls: readonly A.Decl[], max: number): { span: Span } | undefined {
  const nodes: object[] = [];
  const depths: number[] = [];
  for (const d of decls) {
    if (d && typeof d === 'object') {
      nodes.push(d);
      depths.push(0);
    }
  }
  while (nodes.length) {
    const node = nodes.pop()!;
    let d = depths.pop()!;
    const kind = (node as { kind?: unknown }).kind;
    if (typeof kind === 'string' && OPERATOR_KINDS.has(kind)) {
      d++;
      if (d > max) return { span: (node as { span: Span }).span };
    }
    if (Array.isArray(node)) {
      for (const c of node) {
        if (c && typeof c === 'object') {
          nodes.push(c);
          depths.push(d);
        }
      }
      continue;
    }
    for (const k in node) {
      if (k === 'span') continue;
      const c = (node as Record<string, unknown>)[k];
      if (c && typeof c === 'object') {
        nodes.push(c);
        depths.push(d);
      }
    }
  }
  return undefined;
}

function simplify(msg: string): string {
  const m = /Expecting (?:token of type --> |--> )?(.*?)(?: <--)? but found --> '(.*)' <--/s.exec(msg);
  if (m) return `expected ${tokenWord(m[1]!)}`;
  if (msg.startsWith('Expecting: one of these possible Token sequences')) return 'unexpected token here';
  if (msg.startsWith('Redundant input')) return 'unexpected token (nothing more was expected here)';
  return msg.split('\n')[0]!;
}

const TOKEN_WORDS: Record<string, string> = {
  RBrack: '"]"', LBrack: '"["', RParen: '")"', LParen: '"("', RBrace: '"}"', LBrace: '"{"', Comma: '","', Colon: '":"', Eq: '"="', Arrow: '"->"', Ident: 'a name', Str: 'a string', Int: 'an integer',
};
function tokenWord(name: string): string {
  if (name.startsWith('Kw_')) return `"${name.slice(3)}"`;
  return TOKEN_WORDS[name] ?? name;
}

function hintFor(msg: string): string {
  if (/RBrace/.test(msg)) return 'check for a missing closing }';
  if (/RParen/.test(msg)) return 'check for a missing closing )';
  if (/RBrack/.test(msg)) return 'check for a missing closing ]';
  if (/Colon/.test(msg)) return 'declarations need a type or shape after a colon, e.g. `param weight: [out, in]`';
  return 'see docs/language.md for the syntax';
}
