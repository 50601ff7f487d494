// Bundles the CLI into dist/sorac.mjs and the programmatic API into dist/index.mjs (run by `npm ci`
// via the prepare script), so that neither needs a TypeScript loader at run time.
// Why: loading ~400 small ESM files (chevrotain and its lodash-es dependency) through the tsx
// loader costs ~0.5 s per process; one pre-transpiled bundle starts in ~0.1 s. bin/sorac.js
// falls back to running the TypeScript sources directly when the bundle is missing or stale.
// Both entries are built in one pass with code splitting: a dynamic `import()` in the sources
// (a command's heavy machinery, e.g. `migrate new`'s code generator and ts-morph, ~0.6 s to load)
// becomes a separate chunk (dist/chunk-*.mjs) that is loaded only by the commands that need it.
// std/ is parsed here once, and the parses go into the bundle (compiler/std-parses.ts), so that a
// compile does not parse the standard library in every process.
import { build } from 'esbuild';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join, relative, resolve, sep } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The parses of every std/ file, as the JSON compiler/std-parses.ts holds in the bundle:
 * { "std/<path>": { text, result } }, result being what grammar/parser.ts's parse(text, "std/<path>")
 * returns (the parser bundled alone into a temporary module and run here).
 */
export async function stdParses() {
  const tmp = mkdtempSync(join(tmpdir(), 'sorac-bundle-'));
  try {
    const out = join(tmp, 'parser.mjs');
    await build({ bundle: true, platform: 'node', format: 'esm', target: 'node20', logLevel: 'warning', entryPoints: [join(root, 'grammar', 'parser.ts')], outfile: out });
    const { parse } = await import(pathToFileURL(out).href);
    const std = join(root, 'std');
    const table = {};
    const walk = (dir) => {
      for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
        const p = join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.name.endsWith('.sora')) {
          const display = 'std/' + relative(std, p).split(sep).join('/');
          const text = readFileSync(p, 'utf8');
          table[display] = { text, result: parse(text, display) };
        }
      }
    };
    walk(std);
    return JSON.stringify(table);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Bundle cli/main.ts -> <outDir>/sorac.mjs and index.ts -> <outDir>/index.mjs (+ shared chunks). */
export async function bundle(outDir = join(root, 'dist')) {
  const parses = await stdParses();
  rmSync(outDir, { recursive: true, force: true }); // no chunk of an earlier build left behind
  await build({
    plugins: [
      {
        name: 'sorac-std-parses',
        setup(b) {
          b.onLoad({ filter: /[\\/]compiler[\\/]std-parses\.ts$/ }, () => ({ contents: `export const STD_PARSES = ${JSON.stringify(parses)};`, loader: 'js' }));
        },
      },
    ],
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
