/**
 * The standard library's parses, made when the CLI is bundled: scripts/bundle.mjs replaces this
 * module in the bundle with one whose STD_PARSES holds, as JSON, `{ "std/nn.sora": { text, result } }`
 * for every file under std/ (the text parsed and what `parse` returned for it). A compile then does
 * not parse std/ in every process (about 30 ms of a cold `sorac build`); loadProgram uses a stored parse
 * only when the file's text is exactly the text that was parsed (compiler/program.ts prebuiltParse).
 * Run from the TypeScript sources (no bundle), it is undefined and std/ is parsed as any file.
 */
export const STD_PARSES: string | undefined = undefined;
