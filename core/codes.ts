/**
 * The one registry of diagnostic codes, for every stage (parser, compiler, emitter, checkpoint
 * readers, runtime, training checkpoints, migrations, pipelines, command-line input).
 *
 * A code is never reused for a different meaning once released. docs/diagnostics.md documents
 * every code with the same title, in the section named here; tests/architecture/registry.test.ts
 * keeps the two identical, and checks that no source file uses a code missing from this table.
 *
 * Messages are specific (they name the tensor, the value, the file); the title is the code's
 * one-line meaning, shown by `sorac explain`-style tooling and in the docs.
 */

export type Severity = 'error' | 'warning' | 'info';

export interface CodeInfo {
  /** One-line meaning (docs/diagnostics.md title column). */
  readonly title: string;
  /** The severity a diagnostic with this code has unless it says otherwise. */
  readonly severity: Severity;
  /** The docs section (docs/diagnostics.md heading) the code is documented under. */
  readonly section: Section;
  /** Process exit code of the CLI when this error ends a command (default 1: user error). */
  readonly exit?: number;
}

export const SECTIONS = {
  syntax: 'Syntax (SORA1xxx)',
  names: 'Names and binding (SORA2xxx)',
  types: 'Types, shapes and dtypes (SORA3xxx)',
  emission: 'Emission (SORA4xxx)',
  checkpoints: 'Checkpoints (SORA50xx)',
  training: 'Training checkpoints (SORA51xx)',
  running: 'Running (SORA55xx)',
  migrations: 'Migrations (SORA6xxx)',
  configuration: 'Configuration and command-line input (SORA7xxx)',
  generation: 'Pipelines and generation (SORA8xxx)',
} as const;
export type Section = keyof typeof SECTIONS;

const e = (section: Section, title: string, extra: { severity?: Severity; exit?: number } = {}): CodeInfo => ({ title, severity: extra.severity ?? 'error', section, ...(extra.exit !== undefined ? { exit: extra.exit } : {}) });

export const CODES = {
  // syntax
  SORA1001: e('syntax', 'unexpected character'),
  SORA1002: e('syntax', 'syntax error'),
  SORA1003: e('syntax', 'unterminated string'),
  SORA1004: e('syntax', 'source too large (> 2 MiB) or nested more than 128 brackets deep'),
  SORA1005: e('syntax', 'invalid source encoding'),
  SORA1030: e('syntax', 'expression nested too deeply'),
  // names and binding
  SORA2001: e('names', 'unknown name'),
  SORA2002: e('names', 'duplicate declaration / checkpoint key'),
  SORA2003: e('names', 'unknown model (`--model`)'),
  SORA2004: e('names', 'import not found'),
  SORA2005: e('names', 'unknown config key (`--set`, dtype rule)'),
  SORA2006: e('names', 'wrong number of arguments'),
  SORA2007: e('names', 'unknown keyword argument'),
  SORA2008: e('names', 'missing argument'),
  SORA2009: e('names', 'unknown member'),
  SORA2010: e('names', 'no model / no entry point'),
  SORA2011: e('names', 'recursion too deep'),
  SORA2030: e('names', 'import outside the project, std and SORAC_PATH'),
  // types, shapes, dtypes
  SORA3001: e('types', 'type mismatch'),
  SORA3002: e('types', 'shape mismatch'),
  SORA3003: e('types', 'not divisible (e.g. hidden size by heads)'),
  SORA3004: e('types', 'rank mismatch'),
  SORA3005: e('types', 'broadcast mismatch'),
  SORA3006: e('types', 'matmul/linear inner dimensions differ'),
  SORA3007: e('types', 'rearrange pattern does not fit'),
  SORA3008: e('types', 'dtype conflict'),
  SORA3009: e('types', 'assertion failed'),
  SORA3010: e('types', 'invalid shape'),
  SORA3011: e('types', 'value not known at compile time'),
  SORA3012: e('types', 'bad argument value'),
  SORA3013: e('types', 'output mismatch'),
  SORA3014: e('types', 'division by zero'),
  SORA3030: e('types', 'model too large to check (instance or parameter limit)'),
  // emission
  SORA4001: e('emission', 'op not available at the target opset'),
  SORA4002: e('emission', 'inline weights too large for one ONNX file'),
  // checkpoints
  SORA5001: e('checkpoints', 'weights not found'),
  SORA5002: e('checkpoints', 'corrupt or invalid safetensors file'),
  SORA5003: e('checkpoints', 'refused pickle content'),
  SORA5004: e('checkpoints', 'legacy (non-zip) PyTorch file'),
  SORA5005: e('checkpoints', 'corrupt or unsupported PyTorch zip archive'),
  SORA5006: e('checkpoints', 'invalid sharded index'),
  SORA5007: e('checkpoints', 'ambiguous weights location'),
  SORA5008: e('checkpoints', 'hub cache problem'),
  SORA5009: e('checkpoints', 'unsupported dtype or storage type'),
  SORA5010: e('checkpoints', 'checkpoint does not match the model'),
  SORA5011: e('checkpoints', 'tensor defined twice'),
  SORA5012: e('checkpoints', 'I/O error'),
  SORA5013: e('checkpoints', 'no tensors found'),
  SORA5014: e('checkpoints', 'cannot write a tensors file'),
  SORA5030: e('checkpoints', 'checkpoint exceeds a reader resource limit'),
  SORA5031: e('checkpoints', 'path leaves its checkpoint or cache root'),
  SORA5032: e('checkpoints', 'not a regular file'),
  SORA5060: e('checkpoints', 'no model fits the checkpoint'),
  // training checkpoints
  SORA5101: e('training', 'wrong kind of directory'),
  SORA5102: e('training', 'incomplete checkpoint'),
  SORA5103: e('training', 'output already exists'),
  SORA5104: e('training', 'invalid argument'),
  SORA5105: e('training', 'cannot write the output'),
  // running
  SORA5501: e('running', 'unknown or missing graph input'),
  SORA5502: e('running', 'input dtype mismatch'),
  SORA5503: e('running', 'input shape mismatch'),
  SORA5504: e('running', 'checkpoint tensor missing or of the wrong shape/dtype'),
  SORA5505: e('running', 'CUDA execution provider unavailable'),
  SORA5506: e('running', 'no kernel for an op on this device'),
  SORA5507: e('running', 'weight conversion failed'),
  SORA5508: e('running', 'onnxruntime failed'),
  SORA5509: e('running', 'micro-batching not possible'),
  SORA5510: e('running', 'loading would narrow weight dtypes'),
  // devices: CUDA provider setup (sorac setup cuda)
  SORA5511: e('running', 'no CUDA provider build for this platform or onnxruntime-node version'),
  SORA5512: e('running', 'CUDA provider source unreadable (file, npm pack or download)'),
  SORA5513: e('running', 'CUDA provider archive truncated or corrupt'),
  SORA5514: e('running', 'CUDA provider file missing from the source'),
  SORA5515: e('running', 'CUDA provider file does not match its pinned size and sha256'),
  SORA5516: e('running', 'cannot write the CUDA provider (cache or onnxruntime-node directory)'),
  // tiled execution (tile() declarations)
  SORA5517: e('running', 'tiled run not possible'),
  // migrations
  SORA6001: e('migrations', 'invalid migration plan, op or key pattern'),
  SORA6002: e('migrations', 'an op does not fit the checkpoint'),
  SORA6003: e('migrations', 'migration is not invertible'),
  SORA6004: e('migrations', 'key collision'),
  SORA6005: e('migrations', 'unknown built-in migration or bad parameter'),
  SORA6006: e('migrations', 'migration script failed'),
  SORA6007: e('migrations', 'output path refused'),
  SORA6008: e('migrations', 'cannot write the output'),
  SORA6009: e('migrations', 'op matched no key (warning)', { severity: 'warning' }),
  SORA6010: e('migrations', 'not exactly reversible on this checkpoint (warning)', { severity: 'warning' }),
  SORA6020: e('migrations', 'migration script stopped by a sandbox limit'),
  SORA6021: e('migrations', 'an op would build a tensor over the size limit'),
  // configuration and command-line input
  SORA7001: e('configuration', 'cannot read file'),
  SORA7002: e('configuration', 'invalid config file'),
  SORA7003: e('configuration', 'invalid `--set` value'),
  SORA7004: e('configuration', 'unknown config keys (warning)', { severity: 'warning' }),
  SORA7005: e('configuration', 'config value has the wrong type'),
  SORA7006: e('configuration', 'nested config objects unwrapped (info) / disagreeing (warning)', { severity: 'info' }),
  SORA7007: e('configuration', 'invalid command-line usage', { exit: 2 }),
  SORA7008: e('configuration', 'cannot write the output'),
  SORA7009: e('configuration', 'interrupted', { exit: 130 }),
  SORA7010: e('configuration', 'model does not compile'),
  SORA7011: e('configuration', 'upstream parameter the model fixes or refuses'),
  SORA7020: e('configuration', 'output would replace or modify an input'),
  SORA7030: e('configuration', 'config value out of range (non-finite, unsafe integer, nested too deeply)'),
  SORA7080: e('configuration', 'invalid workspace config (sorac.json)'),
  // pipelines and generation: declarations (80xx)
  SORA8001: e('generation', 'unknown or missing pipeline component'),
  SORA8002: e('generation', 'component weights source missing or not allowed'),
  SORA8003: e('generation', 'pipeline components do not fit each other'),
  SORA8004: e('generation', 'unknown component kind, option or entry'),
  SORA8005: e('generation', 'invalid component option value'),
  SORA8006: e('generation', 'no pipeline (or several) in the file'),
  SORA8007: e('generation', 'a release feature the pipeline asks for is not supported yet'),
  // text: tokenizers and prompt cleaning (81xx)
  SORA8101: e('generation', 'tokenizer files not found'),
  SORA8102: e('generation', 'invalid or truncated spiece.model'),
  SORA8103: e('generation', 'unsupported SentencePiece model'),
  SORA8104: e('generation', 'inconsistent SentencePiece vocabulary'),
  SORA8105: e('generation', 'invalid precompiled normalization charsmap'),
  SORA8106: e('generation', 'invalid tokenizer.json'),
  SORA8107: e('generation', 'unsupported tokenizer.json component'),
  SORA8108: e('generation', 'bad encode options'),
  SORA8109: e('generation', 'prompt is not a string'),
  SORA8110: e('generation', 'cannot read a tokenizer file'),
  SORA8111: e('generation', 'unknown Open-Sora release for prompt cleaning'),
  SORA8112: e('generation', "prompt cannot be cleaned (Open-Sora's cleaner raises on it)"),
  SORA8170: e('generation', 'CLIP tokenizer files not found'),
  SORA8171: e('generation', 'invalid CLIP vocab.json / merges.txt / tokenizer config'),
  SORA8172: e('generation', 'CLIP special token missing from vocab.json'),
  // samplers (82xx)
  SORA8201: e('generation', 'sampling steps out of range'),
  SORA8202: e('generation', 'guidance scale not finite'),
  SORA8203: e('generation', 'noise source lacks a tensor'),
  SORA8204: e('generation', 'noise shape does not match the latent'),
  SORA8205: e('generation', 'noise tensor has an unsupported dtype'),
  SORA8206: e('generation', 'noise file unreadable'),
  SORA8207: e('generation', 'latent shape invalid'),
  SORA8208: e('generation', 'denoiser output has the wrong shape'),
  SORA8209: e('generation', 'conditioning input has the wrong shape or value'),
  SORA8210: e('generation', 'unknown respacing string'),
  SORA8211: e('generation', 'respacing cannot be divided as asked'),
  SORA8212: e('generation', 'unknown beta schedule'),
  SORA8213: e('generation', 'latent mask has the wrong shape or values'),
  SORA8214: e('generation', 'sampling cancelled', { exit: 130 }),
  SORA8215: e('generation', 'unsupported sampler option'),
  SORA8216: e('generation', 'invalid video request'),
  SORA8217: e('generation', 'invalid seed'),
  SORA8218: e('generation', 'cfg channel out of range'),
  SORA8219: e('generation', 'unknown release or sampler kind'),
  // generate (83xx)
  SORA8301: e('generation', 'invalid prompt'),
  SORA8302: e('generation', 'unknown resolution or aspect ratio'),
  SORA8303: e('generation', 'frame count or size the components cannot take'),
  SORA8304: e('generation', 'cannot write the video'),
  SORA8305: e('generation', 'tokenizer and text encoder do not fit'),
} as const satisfies Record<string, CodeInfo>;

export type Code = keyof typeof CODES;

export function isCode(s: string): s is Code {
  return Object.prototype.hasOwnProperty.call(CODES, s);
}

/** The docs anchor of a code's section, e.g. `docs/diagnostics.md#checkpoints-sora50xx`. */
export function docsAnchor(code: Code): string {
  const h = SECTIONS[CODES[code].section];
  return `docs/diagnostics.md#${h.toLowerCase().replace(/[^a-z0-9 -]/g, '').trim().replace(/ /g, '-')}`;
}
