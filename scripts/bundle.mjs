// Bundles the CLI into dist/sorac.mjs and the programmatic API into dist/index.mjs (run by `npm ci`
// via the prepare script), so that neither needs a TypeScript loader at run time.
// Why: loading ~400 small ESM files (chevrotain and its lodash-es dependency) through the tsx
// loader costs ~0.5 s per process; one pre-transpiled bundle starts in ~0.1 s. bin/sorac.js
// falls back to running the TypeScript sources directly when the bundle is missing or stale.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Bundle cli/main.ts -> <outDir>/sorac.mjs and index.ts -> <outDir>/index.mjs. */
export async function bundle(outDir = join(root, 'dist')) {
  const common = {
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['onnxruntime-node', 'ts-morph', 'esbuild', 'tsx'],
    banner: { js: "import { createRequire as __soracCreateRequire } from 'node:module'; const require = __soracCreateRequire(import.meta.url);" },
    logLevel: 'warning',
    legalComments: 'none',
  };
  await build({ ...common, entryPoints: [join(root, 'cli', 'main.ts')], outfile: join(outDir, 'sorac.mjs') });
  await build({ ...common, entryPoints: [join(root, 'index.ts')], outfile: join(outDir, 'index.mjs') });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await bundle();
