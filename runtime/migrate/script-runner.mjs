// Child process that evaluates one migration script and sends its plan (plain data) to the
// parent over IPC. Started by script.ts under Node's permission model: it can read sorac's files
// and the script's directory, write nothing, and start no processes.
import Module, { register } from 'node:module';
import { basename, dirname, extname, resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';

const [script, root] = process.argv.slice(2);
const send = (m) => new Promise((res) => process.send(m, res));
try {
  const rootUrl = pathToFileURL(root + '/').href;
  register(pathToFileURL(`${root}/runtime/migrate/script-hooks.mjs`).href, import.meta.url, {
    data: {
      builder: pathToFileURL(`${root}/runtime/migrate/builder.ts`).href,
      userDir: pathToFileURL(dirname(script) + '/').href,
      trusted: ['runtime/', 'compiler/', 'node_modules/'].map((p) => rootUrl + p),
    },
  });
  // the same rule for scripts that tsx loads as CommonJS (a .ts outside any "type": "module" package)
  const builderPath = `${root}/runtime/migrate/builder.ts`;
  const userDir = dirname(script) + '/';
  const trustedDirs = ['runtime/', 'compiler/', 'node_modules/'].map((p) => `${root}/${p}`);
  const userFile = (parent) => {
    const from = (parent?.filename ?? '').split('?')[0];
    return from.startsWith(userDir) && !trustedDirs.some((t) => from.startsWith(t)) ? from : undefined;
  };
  const origResolve = Module._resolveFilename;
  Module._resolveFilename = function (request, parent, ...rest) {
    return origResolve.call(this, request === 'sorac/migrate' ? builderPath : request, parent, ...rest);
  };
  const origLoad = Module._load;
  Module._load = function (request, parent, ...rest) {
    const from = userFile(parent);
    if (from && request !== 'sorac/migrate') {
      const rel = request.startsWith('./') || request.startsWith('../');
      if (!rel || !resolvePath(dirname(from), request).startsWith(userDir))
        throw Object.assign(new Error(`migration scripts may import only "sorac/migrate" and files next to them; refused "${request}"`), { code: 'SORAC_IMPORT_REFUSED' });
    }
    return origLoad.call(this, request, parent, ...rest);
  };
  // no network from a script either (Node 20's permission model does not cover it)
  for (const g of ['fetch', 'WebSocket', 'EventSource']) delete globalThis[g];
  const { tsImport } = await import('tsx/esm/api');
  const mod = await tsImport(pathToFileURL(script).href, import.meta.url);
  let def = mod.default;
  if (def && def.__soracMigration !== 1 && def.default) def = def.default; // loaded as CommonJS
  if (!def || def.__soracMigration !== 1 || typeof def.toPlan !== 'function') {
    await send({ error: 'the script has no `export default migration(…)` (import { migration } from "sorac/migrate")' });
  } else {
    await send({ plan: JSON.parse(JSON.stringify(def.toPlan(basename(script, extname(script))))) });
  }
} catch (e) {
  const at = String(e?.stack ?? '').split('\n').find((l) => /^\s+at /.test(l) && !l.includes('data:') && !l.includes('node:internal'));
  await send({ error: `${e?.message ?? String(e)}${e?.resource ? ` (${e.permission} ${e.resource})` : ''}${at ? `\n${at.trim()}` : ''}` });
}
process.exit(0);
