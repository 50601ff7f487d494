// Bundles the CLI into dist/sorac.mjs and the programmatic API into dist/index.mjs (run by `npm ci`
// via the prepare script), so that neither needs a TypeScript loader at run time.
// Why: loading ~400 small ESM files (chevrotain and its lodash-es dependency) through the tsx
// loader costs ~0.5 s per process; one pre-transpiled bundle starts in ~0.1 s. bin/sorac.js
// falls back to running the TypeScript sources directly when the bundle is missing or stale.
// Both entries are built in one pass with code splitting: a dynamic `import()` in the sources
// (a command's heavy machinery, e.g. `migrate new`'s code generator and ts-morph, ~0.6 s to load)
// becomes a separate chunk (dist/chunk-*.mjs) that is loaded only by the commands that need it.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Bundle cli/main.ts -> <outDir>/sorac.mjs and index.ts -> <outDir>/index.mjs (+ shared chunks). */
export async function bundle(outDir = join(root, 'dist')) {
  rmSync(outDir, { recursive: true, force: true }); // no chunk of an earlier build left behind
  await build({
    bundle: true,
    splitting: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['onnxruntime-node', 'ts-morph', 'esbuild', 'tsx'],
    banner: { js: "import { createRequire as __soracCreateRequire } from 'node:module'; const require = __soracCreateRequire(import.meta.url);" },
    logLevel: 'warning',
    legalComments: 'none',
    entryPoints: { sorac: join(root, 'cli', 'main.ts'), index: join(root, 'index.ts') },
    outdir: outDir,
    outExtension: { '.js': '.mjs' },
    chunkNames: 'chunk-[hash]',
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await bundle();
