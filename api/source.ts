/** .sora source text: canonical formatting (`sorac fmt`) and how paths are shown in diagnostics. */
export { format } from '../grammar/format.ts';
export { displayPath } from '../compiler/program.ts';
