/**
 * The .sora abstract syntax tree. Every node carries its source span. The tree is plain data
 * (no methods) so it can be compared structurally (fmt preserves the AST) and serialised.
 */
import type { Span } from '../core/diagnostics.ts';

export interface Ident {
  readonly name: string;
  readonly span: Span;
}

export interface Comment {
  readonly text: string;
  readonly span: Span;
}

export interface SourceFile {
  readonly kind: 'file';
  readonly file: string;
  readonly decls: readonly Decl[];
  readonly comments: readonly Comment[];
  readonly span: Span;
}

export type Decl = ImportDecl | ModuleDecl | PipelineDecl | FnDecl | LetStmt;

export interface ImportDecl {
  readonly kind: 'import';
  readonly names: readonly Ident[];
  readonly from: StrLit;
  readonly span: Span;
}

export interface ModuleDecl {
  readonly kind: 'module';
  /** `model` declarations are modules whose parameters are their `config` fields; they can be compiled. */
  readonly isModel: boolean;
  readonly name: Ident;
  readonly version?: StrLit;
  readonly params: readonly Param[];
  readonly members: readonly Member[];
  readonly span: Span;
}

/**
 * `pipeline Name version "1.2" { config {...} tokenizer = t5_tokenizer(...) from "..." ... }`: a whole
 * inference pipeline (docs/language.md, "Pipelines"): its generation settings and its components.
 */
export interface PipelineDecl {
  readonly kind: 'pipeline';
  readonly name: Ident;
  readonly version?: StrLit;
  readonly members: readonly PipelineMember[];
  readonly span: Span;
}

export type PipelineMember = ConfigBlock | LetStmt | AssertStmt | ComponentDecl;

/** `name = Model(k=v, ...) from "weights"`: one component of a pipeline and where its weights come from. */
export interface ComponentDecl {
  readonly kind: 'component';
  readonly name: Ident;
  readonly value: Expr;
  readonly from?: StrLit;
  readonly span: Span;
}

export interface Param {
  readonly name: Ident;
  readonly type?: TypeExpr;
  readonly default?: Expr;
  readonly span: Span;
}

/** `int`, `float[3]`, `f32[B, C, ...]`, `[..., C]`, `bool?`. */
export interface TypeExpr {
  readonly kind: 'type';
  readonly name?: Ident;
  readonly dims?: readonly DimSpec[];
  readonly optional: boolean;
  readonly span: Span;
}

export type DimSpec = { readonly kind: 'ellipsis'; readonly span: Span } | { readonly kind: 'wildcard'; readonly span: Span } | Expr;

export type Member = ConfigBlock | DtypeBlock | UpstreamBlock | TensorDecl | AliasDecl | SubDecl | LetStmt | AssertStmt | FnDecl;

/**
 * `upstream { fixes dropout "identity at inference"  refuses enable_sequence_parallelism = false "reason" }`: the
 * upstream constructor parameters a model does not take as config keys (docs/guides/upstream-parameters.md).
 * `fixes k "why"`: the parameter does not change the result, any value is accepted; `fixes k = v "why"` /
 * `refuses k = v "why"`: only the upstream value v is modelled, another value given for k is an error.
 */
export interface UpstreamRule {
  readonly verdict: 'fixes' | 'refuses';
  readonly key: Ident;
  readonly value?: Expr;
  readonly reason: StrLit;
  readonly span: Span;
}

export interface UpstreamBlock {
  readonly kind: 'upstream';
  readonly rules: readonly UpstreamRule[];
  readonly span: Span;
}

export interface ConfigBlock {
  readonly kind: 'config';
  readonly fields: readonly Param[];
  readonly span: Span;
}

export interface DtypeRule {
  readonly key: Ident;
  readonly value: Expr;
  readonly span: Span;
}

export interface DtypeBlock {
  readonly kind: 'dtype';
  readonly rules: readonly DtypeRule[];
  readonly span: Span;
}

/** A dotted member path such as `t_block.1` or `y_proj.fc1`. */
export interface Path {
  readonly segments: readonly Ident[];
  readonly span: Span;
}

export interface TensorDecl {
  readonly kind: 'param' | 'buffer';
  readonly path: Path;
  readonly shape: readonly Expr[];
  readonly dtype?: Ident;
  readonly cond?: Expr;
  readonly span: Span;
}

/** `alias encoder.embed_tokens.weight = shared.weight`: one tensor saved under two keys (tied weights). */
export interface AliasDecl {
  readonly kind: 'alias';
  readonly path: Path;
  readonly target: Path;
  readonly span: Span;
}

export interface SubDecl {
  readonly kind: 'sub';
  readonly path: Path;
  readonly value: Expr;
  readonly cond?: Expr;
  readonly span: Span;
}

export interface FnDecl {
  readonly kind: 'fn';
  readonly entry: boolean;
  readonly name: Ident;
  readonly params: readonly Param[];
  readonly ret?: readonly RetSpec[];
  readonly body: Block;
  readonly span: Span;
}

export interface RetSpec {
  readonly name?: Ident;
  readonly type: TypeExpr;
  readonly span: Span;
}

export interface Block {
  readonly stmts: readonly Stmt[];
  readonly span: Span;
}

export type Stmt = LetStmt | AssignStmt | IfStmt | ForStmt | ReturnStmt | AssertStmt | ExprStmt;

export interface LetStmt {
  readonly kind: 'let';
  readonly names: readonly Ident[];
  /** `let (a, b) = ...` destructures a tuple. */
  readonly destructure: boolean;
  readonly value: Expr;
  readonly span: Span;
}

export interface AssignStmt {
  readonly kind: 'assign';
  readonly target: Ident;
  readonly op: '=' | '+=' | '-=' | '*=' | '/=';
  readonly value: Expr;
  readonly span: Span;
}

export interface IfStmt {
  readonly kind: 'if';
  readonly cond: Expr;
  readonly then: Block;
  readonly else?: Block | IfStmt;
  readonly span: Span;
}

export interface ForStmt {
  readonly kind: 'for';
  readonly name: Ident;
  readonly iter: Expr;
  readonly body: Block;
  readonly span: Span;
}

export interface ReturnStmt {
  readonly kind: 'return';
  readonly values: readonly Expr[];
  readonly span: Span;
}

export interface AssertStmt {
  readonly kind: 'assert';
  readonly cond: Expr;
  readonly message?: StrLit;
  readonly span: Span;
}

export interface ExprStmt {
  readonly kind: 'expr';
  readonly expr: Expr;
  readonly span: Span;
}

export type Expr =
  | NumLit
  | StrLit
  | BoolLit
  | NoneLit
  | NameExpr
  | BinaryExpr
  | UnaryExpr
  | TernaryExpr
  | CallExpr
  | MemberExpr
  | IndexExpr
  | ListExpr
  | TupleExpr
  | CompExpr;

export interface NumLit {
  readonly kind: 'num';
  readonly value: number;
  readonly isInt: boolean;
  /** Source spelling, kept so fmt does not rewrite 1e-6 as 0.000001. */
  readonly raw: string;
  readonly span: Span;
}
export interface StrLit {
  readonly kind: 'str';
  readonly value: string;
  readonly span: Span;
}
export interface BoolLit {
  readonly kind: 'bool';
  readonly value: boolean;
  readonly span: Span;
}
export interface NoneLit {
  readonly kind: 'none';
  readonly span: Span;
}
export interface NameExpr {
  readonly kind: 'name';
  readonly name: string;
  readonly span: Span;
}
export type BinaryOp =
  | '+' | '-' | '*' | '/' | '//' | '%' | '**' | '@'
  | '==' | '!=' | '<' | '<=' | '>' | '>='
  | 'and' | 'or' | 'is' | 'is not' | 'in';
export interface BinaryExpr {
  readonly kind: 'binary';
  readonly op: BinaryOp;
  readonly left: Expr;
  readonly right: Expr;
  readonly span: Span;
}
export interface UnaryExpr {
  readonly kind: 'unary';
  readonly op: '-' | '+' | 'not';
  readonly operand: Expr;
  readonly span: Span;
}
export interface TernaryExpr {
  readonly kind: 'ternary';
  readonly cond: Expr;
  readonly then: Expr;
  readonly else: Expr;
  readonly span: Span;
}
export interface Arg {
  readonly name?: Ident;
  readonly value: Expr;
  readonly span: Span;
}
export interface CallExpr {
  readonly kind: 'call';
  readonly callee: Expr;
  readonly args: readonly Arg[];
  readonly span: Span;
}
export interface MemberExpr {
  readonly kind: 'member';
  readonly object: Expr;
  /** A name, or a numeric segment as in `t_block.1`. */
  readonly name: Ident;
  readonly span: Span;
}
export type IndexItem =
  | { readonly kind: 'slice'; readonly start?: Expr; readonly stop?: Expr; readonly step?: Expr; readonly span: Span }
  | { readonly kind: 'ellipsis'; readonly span: Span }
  | { readonly kind: 'newaxis'; readonly span: Span }
  | { readonly kind: 'at'; readonly index: Expr; readonly span: Span };
export interface IndexExpr {
  readonly kind: 'index';
  readonly object: Expr;
  readonly items: readonly IndexItem[];
  readonly span: Span;
}
export interface ListExpr {
  readonly kind: 'list';
  readonly items: readonly Expr[];
  readonly span: Span;
}
export interface TupleExpr {
  readonly kind: 'tuple';
  readonly items: readonly Expr[];
  readonly span: Span;
}
/** `[Block(i) for i in range(depth)]`: an instance list when it yields modules. */
export interface CompExpr {
  readonly kind: 'comp';
  readonly element: Expr;
  readonly name: Ident;
  readonly iter: Expr;
  readonly span: Span;
}
