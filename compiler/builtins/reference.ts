/**
 * Every builtin's signature and meaning, in one table: `sig()` binds arguments by these parameter lists
 * (so the checker and the documentation cannot disagree), errors name the signature, the editor shows
 * it on hover and completion, and docs/language.md's reference section is generated from it
 * (`npx tsx scripts/builtin-docs.ts`; tests/compiler/builtin-reference.test.ts keeps the two equal).
 *
 * Parameters ending in `?` are optional. `rest` documents extra arguments a builtin reads itself
 * (`rearrange`'s axis sizes, `min`'s numbers).
 */
export interface BuiltinRef {
  readonly group: BuiltinGroup;
  readonly params: readonly string[];
  /** extra arguments the builtin reads itself, as shown in the signature */
  readonly rest?: string;
  readonly returns: string;
  readonly doc: string;
}

export const BUILTIN_GROUPS = {
  compile: 'Compile-time values',
  math: 'Elementwise math (numbers fold at compile time; tensors become graph ops)',
  shape: 'Shapes and layout',
  nn: 'Neural-network primitives',
  reduce: 'Reductions',
  create: 'Creating tensors',
  dtype: 'dtypes',
  decl: 'Declarations',
} as const;
export type BuiltinGroup = keyof typeof BUILTIN_GROUPS;

const math = (doc: string): BuiltinRef => ({ group: 'math', params: ['x'], returns: 'number or tensor', doc });
const reduce = (doc: string): BuiltinRef => ({ group: 'reduce', params: ['x', 'dim?', 'keepdim?'], returns: 'tensor', doc });

export const BUILTIN_REFERENCE: Readonly<Record<string, BuiltinRef>> = {
  // compile-time
  range: { group: 'compile', params: ['a', 'b?', 'step?'], returns: 'list of int', doc: '`range(n)` is 0..n-1, `range(a, b, step)` as in Python; ints known at compile time.' },
  len: { group: 'compile', params: ['x'], returns: 'int', doc: 'Number of items of a list or tuple (a compile-time int).' },
  int: { group: 'compile', params: ['x'], returns: 'int or tensor', doc: 'A number truncated to int; on a tensor, a cast to i64.' },
  float: { group: 'compile', params: ['x'], returns: 'float or tensor', doc: 'A number as float; on a tensor, a cast to f32.' },
  round: { group: 'compile', params: ['x'], returns: 'int or tensor', doc: 'Round half to even (as Python and torch do); on a tensor, ONNX Round.' },
  min: { group: 'compile', params: [], rest: '*numbers', returns: 'number', doc: 'The smallest of numbers known at compile time, given as arguments or one list.' },
  max: { group: 'compile', params: [], rest: '*numbers', returns: 'number', doc: 'The largest of numbers known at compile time, given as arguments or one list.' },
  prod: { group: 'compile', params: ['xs'], returns: 'int or dimension', doc: 'Product of a list of ints and symbolic dimensions.' },
  ceil_div: { group: 'compile', params: ['a', 'b'], returns: 'int or dimension', doc: 'Ceiling division `ceil(a / b)` of ints or symbolic dimensions.' },
  // elementwise math
  sqrt: math('Square root.'),
  rsqrt: { group: 'math', params: ['x'], returns: 'number or tensor', doc: '`1 / sqrt(x)`.' },
  exp: math('Exponential.'),
  log: math('Natural logarithm.'),
  sin: math('Sine.'),
  cos: math('Cosine.'),
  tanh: math('Hyperbolic tangent.'),
  erf: math('Gauss error function.'),
  sigmoid: math('Logistic sigmoid `1 / (1 + exp(-x))`.'),
  relu: math('`max(x, 0)`.'),
  abs: math('Absolute value (any numeric dtype).'),
  neg: math('`-x` (any numeric dtype).'),
  ceil: math('Round up.'),
  floor: math('Round down.'),
  silu: { group: 'math', params: ['x'], returns: 'tensor', doc: '`x * sigmoid(x)` (SiLU / swish).' },
  gelu: { group: 'math', params: ['x', 'approximate?'], returns: 'tensor', doc: 'GELU; `approximate="tanh"` for the tanh approximation, else the exact erf form.' },
  clamp: { group: 'math', params: ['x', 'min?', 'max?'], returns: 'tensor', doc: 'Limit to `[min, max]` (either bound may be left out).' },
  maximum: { group: 'math', params: ['a', 'b'], returns: 'tensor', doc: 'Elementwise maximum, broadcasting.' },
  minimum: { group: 'math', params: ['a', 'b'], returns: 'tensor', doc: 'Elementwise minimum, broadcasting.' },
  where: { group: 'math', params: ['cond', 'a', 'b'], returns: 'tensor', doc: '`a` where `cond` is true, else `b`, broadcasting.' },
  // shapes
  shape: { group: 'shape', params: ['x', 'dim?'], returns: 'tuple of dimensions, or one', doc: 'The (symbolic) shape of a tensor, or its size along `dim`.' },
  reshape: { group: 'shape', params: ['x', 'shape'], returns: 'tensor', doc: 'Same elements in a new shape (one entry may be -1); the element counts must agree.' },
  flatten: { group: 'shape', params: ['x', 'start?', 'end?'], returns: 'tensor', doc: 'Merge the axes `start..end` (default all) into one.' },
  transpose: { group: 'shape', params: ['x', 'a', 'b'], returns: 'tensor', doc: 'Swap axes `a` and `b`.' },
  permute: { group: 'shape', params: ['x', 'dims'], returns: 'tensor', doc: 'Reorder the axes: `dims` lists every axis once.' },
  unsqueeze: { group: 'shape', params: ['x', 'dim'], returns: 'tensor', doc: 'Insert a size-1 axis at `dim`.' },
  squeeze: { group: 'shape', params: ['x', 'dim'], returns: 'tensor', doc: 'Remove the size-1 axis `dim`.' },
  expand: { group: 'shape', params: ['x', 'shape'], returns: 'tensor', doc: 'Broadcast size-1 axes to `shape` (-1 keeps an axis).' },
  concat: { group: 'shape', params: ['xs', 'dim?'], returns: 'tensor', doc: 'Join a list of tensors along `dim` (default 0); the other axes must agree.' },
  stack: { group: 'shape', params: ['xs', 'dim?'], returns: 'tensor', doc: 'Join a list of same-shaped tensors along a new axis `dim` (default 0).' },
  split: { group: 'shape', params: ['x', 'sizes', 'dim?'], returns: 'tuple of tensors', doc: 'Cut along `dim` into pieces of the given sizes (a list), or of one size (an int).' },
  chunk: { group: 'shape', params: ['x', 'n', 'dim?'], returns: 'tuple of tensors', doc: 'Cut along `dim` into `n` equal pieces (the size must divide).' },
  unbind: { group: 'shape', params: ['x', 'dim?'], returns: 'tuple of tensors', doc: 'The slices along `dim` (of known size), each without that axis.' },
  rearrange: { group: 'shape', params: ['x', 'pattern'], rest: '**sizes', returns: 'tensor', doc: 'einops rearrange: `rearrange(x, "B (T S) C -> (B S) T C", T=T, S=S)`; axis sizes it cannot infer are given by name.' },
  repeat: { group: 'shape', params: ['x', 'pattern'], rest: '**sizes', returns: 'tensor', doc: 'einops repeat: new axes on the right-hand side are repeated, e.g. `repeat(x, "n f -> n (f r)", r=2)`.' },
  pad: { group: 'shape', params: ['x', 'pads', 'mode?', 'value?'], returns: 'tensor', doc: 'Pad like torch `F.pad`: `(before, after)` pairs from the last axis backwards; mode `constant` (with `value`), `reflect` or `replicate`.' },
  pad_to_multiple: { group: 'shape', params: ['x', 'multiples', 'mode?'], returns: 'tensor', doc: 'Pad the trailing axes at the end up to multiples of `multiples`.' },
  narrow: { group: 'shape', params: ['x', 'dim', 'start', 'length?', 'name?'], returns: 'tensor', doc: '`x[..., start:start+length, ...]` along `dim`, as torch.narrow; `start` may be a runtime scalar tensor, then without `length` the size is a new symbol `name`.' },
  // nn
  matmul: { group: 'nn', params: ['a', 'b'], returns: 'tensor', doc: 'Matrix product over the last two axes, batch axes broadcasting (also the `@` operator).' },
  linear: { group: 'nn', params: ['x', 'weight', 'bias?'], returns: 'tensor', doc: '`x @ weight^T + bias`, weight `[out, in]` as torch.' },
  conv: { group: 'nn', params: ['x', 'weight', 'bias?', 'stride?', 'padding?', 'dilation?', 'groups?'], returns: 'tensor', doc: 'N-d convolution (1, 2 or 3 spatial axes from the weight\'s rank), weight `[out, in/groups, *kernel]`.' },
  layer_norm: { group: 'nn', params: ['x', 'weight?', 'bias?', 'eps?'], returns: 'tensor', doc: 'Layer normalization over the last axis (eps default 1e-5).' },
  rms_norm: { group: 'nn', params: ['x', 'weight?', 'eps?'], returns: 'tensor', doc: 'RMS normalization over the last axis (eps default 1e-6), computed in f32 and cast back before the weight.' },
  group_norm: { group: 'nn', params: ['x', 'groups', 'weight?', 'bias?', 'eps?'], returns: 'tensor', doc: 'Group normalization over `groups` channel groups (axis 1; eps default 1e-5).' },
  softmax: { group: 'nn', params: ['x', 'dim?'], returns: 'tensor', doc: 'Softmax along `dim` (default -1).' },
  attention: { group: 'nn', params: ['q', 'k', 'v', 'bias?', 'scale?'], returns: 'tensor', doc: '`softmax(q @ k^T * scale + bias) @ v` with the softmax in f32 (scale default `1/sqrt(head_dim)`).' },
  embedding: { group: 'nn', params: ['ids', 'table'], returns: 'tensor', doc: 'Rows of `table` `[n, d]` for integer `ids`.' },
  gather: { group: 'nn', params: ['x', 'dim', 'index'], returns: 'tensor', doc: 'torch.gather: values of `x` along `dim` at `index`.' },
  interpolate: { group: 'nn', params: ['x', 'scale_factor', 'mode?'], returns: 'tensor', doc: 'Nearest-neighbour upsampling of the spatial axes (after batch and channel) by integer factors.' },
  // reductions
  mean: reduce('Mean over `dim` (default all axes); `keepdim=true` keeps them as size 1.'),
  sum: { group: 'reduce', params: ['x', 'dim?', 'keepdim?'], returns: 'tensor, or a number for a list', doc: 'Sum over `dim` (default all axes); of a list of numbers, their sum.' },
  amax: reduce('Maximum over `dim` (default all axes).'),
  // creation
  arange: { group: 'create', params: ['a', 'b?', 'step?', 'dtype?'], returns: 'tensor', doc: 'A 1-d tensor `a, a+step, ... < b` (or `0..a-1`); dtype default i64.' },
  zeros: { group: 'create', params: ['shape', 'dtype?'], returns: 'tensor', doc: 'A tensor of zeros (dtype default: the compute dtype).' },
  ones: { group: 'create', params: ['shape', 'dtype?'], returns: 'tensor', doc: 'A tensor of ones (dtype default: the compute dtype).' },
  full: { group: 'create', params: ['shape', 'value', 'dtype?'], returns: 'tensor', doc: 'A tensor filled with `value`.' },
  tensor: { group: 'create', params: ['values', 'dtype?'], returns: 'tensor', doc: 'A constant 1-d tensor from a list of numbers known at compile time (dtype default: i64 for ints, else the compute dtype).' },
  // dtypes
  cast: { group: 'dtype', params: ['x', 'dtype'], returns: 'tensor', doc: 'Convert to `dtype` (`f32`, `bf16`, `i64`, ...).' },
  compute_dtype: { group: 'dtype', params: [], returns: 'dtype', doc: 'The compute dtype in effect here (the policy\'s, or a dtype island\'s).' },
  dtype_min: { group: 'dtype', params: ['dtype'], returns: 'float', doc: 'The most negative finite value of a float dtype (for masking).' },
  // declarations
  micro_batch: { group: 'decl', params: ['axis', 'step?', 'out_step?', 'out_dim?', 'length?'], returns: 'none', doc: 'Declares that the entry is independent across groups of `step` elements of the input dimension `axis` (each giving `out_step` output elements along `out_dim`; `length` names a scalar input that is the total output extent), so the runtime may run it in chunks (docs/adr/005-micro-batching.md). No graph nodes.' },
  tile: { group: 'decl', params: ['axes', 'size', 'stride', 'blend', 'keep', 'threshold?', 'first_keep?', 'drop?', 'unsupported?'], returns: 'none', doc: 'Declares that above `threshold` (default `size`) elements along any of the input dimensions `axes`, the entry\'s result is that of overlapping tiles of `size` elements every `stride`, linearly blended over `blend` output elements with the (already blended) previous tile along each axis; `first_keep`/`keep` output elements are kept per tile and `drop` leading ones dropped from tiles after the first; several nest (first outermost); `unsupported="reason"` refuses such inputs instead. The runtime always runs declared tilings (docs/guides/vae-pipeline.md). No graph nodes.' },
};

/** `layer_norm(x, weight?, bias?, eps?)` */
export function signatureText(name: string): string {
  const r = BUILTIN_REFERENCE[name];
  if (!r) return `${name}(...)`;
  return `${name}(${[...r.params, ...(r.rest ? [r.rest] : [])].join(', ')})`;
}
