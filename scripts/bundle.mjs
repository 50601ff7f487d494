// Bundles the CLI into dist/sorac.mjs (run by `npm ci` via the prepare script).
// Why: loading ~400 small ESM files (chevrotain and its lodash-es dependency) through the tsx
// loader costs ~0.5 s per process; one pre-transpiled bundle starts in ~0.1 s. bin/sorac.js
// falls back to running the TypeScript sources directly when the bundle is missing or stale.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
await build({
  entryPoints: [join(root, 'cli', 'main.ts')],
  outfile: join(root, 'dist', 'sorac.mjs'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['onnxruntime-node', 'ts-morph', 'esbuild', 'tsx'],
  banner: { js: "import { createRequire as __soracCreateRequire } from 'node:module'; const require = __soracCreateRequire(import.meta.url);" },
  logLevel: 'warning',
  legalComments: 'none',
});
