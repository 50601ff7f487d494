// Module resolve hook for migration scripts (registered by script-runner.mjs). User code (files
// under the script's directory that are not sorac's own) may import only 'sorac/migrate' and
// relative files inside that directory; everything else (node:fs, node:child_process, packages)
// is refused, so a script can do nothing but describe ops through the builder.
let cfg;
export function initialize(data) {
  cfg = data;
}
const trusted = (url) => cfg.trusted.some((t) => url.startsWith(t));
export async function resolve(specifier, context, next) {
  if (specifier === 'sorac/migrate') return next(cfg.builder, context);
  const parent = context.parentURL ?? '';
  const fromUser = parent.startsWith(cfg.userDir) && !trusted(parent);
  if (fromUser) {
    if (specifier.startsWith('./') || specifier.startsWith('../')) {
      const u = new URL(specifier, parent);
      if (u.protocol === 'file:' && u.href.startsWith(cfg.userDir)) return next(specifier, context);
    }
    throw Object.assign(new Error(`migration scripts may import only "sorac/migrate" and files next to them; refused "${specifier}"`), { code: 'SORAC_IMPORT_REFUSED' });
  }
  return next(specifier, context);
}
