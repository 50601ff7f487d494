#!/usr/bin/env node
// sorac entry point. Uses the pre-built bundle (dist/sorac.mjs, made by `npm ci`/`npm run bundle`).
// In a development checkout (a .git beside package.json) the bundle is used only while it is newer
// than every source file, otherwise the TypeScript sources run through tsx; an installed package
// has no .git and pays no freshness scan at start-up. SORAC_FROM_SOURCE=1 forces the sources.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bundle = join(root, 'dist', 'sorac.mjs');

function newestSource() {
  let newest = 0;
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  for (const d of ['api', 'cli', 'compiler', 'core', 'grammar', 'runtime']) if (existsSync(join(root, d))) walk(join(root, d));
  return newest;
}

let main;
const checkout = existsSync(join(root, '.git'));
if (!process.env.SORAC_FROM_SOURCE && existsSync(bundle) && (!checkout || statSync(bundle).mtimeMs >= newestSource())) {
  ({ main } = await import(pathToFileURL(bundle).href));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import(pathToFileURL(join(root, 'cli', 'main.ts')).href));
}
process.exitCode = await main(process.argv.slice(2));
