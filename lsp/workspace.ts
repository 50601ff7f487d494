/**
 * The workspace's config for the editor: `sorac.json` in the workspace root chooses, per workspace and
 * optionally per file, the config the model is checked and hovered under (the same inputs as
 * `sorac check --config F --set k=v --model M`). docs/guides/editor.md describes the format.
 *
 *   { "config": "cfg.json" | { "depth": 2 }, "set": { "num_heads": 8 }, "model": "STDiT3",
 *     "files": { "examples/stdit3.sora": { "config": ..., "set": ..., "model": ... } } }
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { readConfigFile } from '../api/model.ts';
import type { ConfigInput } from '../compiler/compile.ts';
import { type Diagnostic, diag } from '../core/diagnostics.ts';
import { SoracError } from '../core/errors.ts';

export interface FileConfig {
  readonly config?: ConfigInput;
  readonly model?: string;
  /** problems with sorac.json (SORA7080), shown on every document */
  readonly problems: readonly Diagnostic[];
}

export interface WorkspaceConfig {
  readonly problems: readonly Diagnostic[];
  forFile(file: string): FileConfig;
}

export const WORKSPACE_CONFIG = 'sorac.json';

interface Section {
  config?: unknown;
  set?: unknown;
  model?: unknown;
}

/** Read `<root>/sorac.json` (absent: no config, the model's defaults). Never throws: problems are diagnostics. */
export function readWorkspaceConfig(root: string): WorkspaceConfig {
  const file = path.join(root, WORKSPACE_CONFIG);
  const problems: Diagnostic[] = [];
  const bad = (msg: string) => problems.push(diag('SORA7080', `${WORKSPACE_CONFIG}: ${msg}`, undefined, { hint: 'e.g. {"config": "configs/small.json", "set": {"depth": 2}}; see docs/guides/editor.md' }));
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') return { problems, forFile: () => ({ problems }) };
    bad(err.code ? `cannot read it (${err.code})` : `not valid JSON: ${err.message}`);
    return { problems, forFile: () => ({ problems }) };
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    bad('must contain a JSON object');
    return { problems, forFile: () => ({ problems }) };
  }
  const top = raw as Section & { files?: unknown };
  for (const k of Object.keys(top)) if (!['config', 'set', 'model', 'files'].includes(k)) bad(`unknown key "${k}" (keys: config, set, model, files)`);
  const files = new Map<string, Section>();
  if (top.files !== undefined) {
    if (!top.files || typeof top.files !== 'object' || Array.isArray(top.files)) bad('"files" must be an object of workspace-relative paths');
    else for (const [k, v] of Object.entries(top.files)) {
      if (!v || typeof v !== 'object' || Array.isArray(v)) bad(`"files"."${k}" must be an object with config, set or model`);
      else files.set(path.resolve(root, k), v as Section);
    }
  }
  const resolveSection = (s: Section, where: string, out: Diagnostic[]): { config?: ConfigInput; model?: string } => {
    let cfgFile: ConfigInput['file'];
    if (typeof s.config === 'string') {
      const p = path.resolve(root, s.config);
      try {
        cfgFile = { path: s.config, values: readConfigFile(p) };
      } catch (e) {
        out.push(diag('SORA7080', `${WORKSPACE_CONFIG}${where}: config ${e instanceof SoracError ? e.message : (e as Error).message}`, undefined));
      }
    } else if (s.config && typeof s.config === 'object' && !Array.isArray(s.config)) cfgFile = { path: WORKSPACE_CONFIG, values: s.config as Record<string, unknown> };
    else if (s.config !== undefined) out.push(diag('SORA7080', `${WORKSPACE_CONFIG}${where}: "config" must be a path or an object of config keys`, undefined));
    let set: [string, string][] | undefined;
    if (s.set && typeof s.set === 'object' && !Array.isArray(s.set)) set = Object.entries(s.set).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]);
    else if (s.set !== undefined) out.push(diag('SORA7080', `${WORKSPACE_CONFIG}${where}: "set" must be an object of config keys, e.g. {"depth": 2}`, undefined));
    if (s.model !== undefined && typeof s.model !== 'string') out.push(diag('SORA7080', `${WORKSPACE_CONFIG}${where}: "model" must be a model name`, undefined));
    const config: ConfigInput | undefined = cfgFile || set ? { ...(cfgFile ? { file: cfgFile } : {}), ...(set ? { set } : {}) } : undefined;
    return { ...(config ? { config } : {}), ...(typeof s.model === 'string' ? { model: s.model } : {}) };
  };
  const base = resolveSection(top, '', problems);
  return {
    problems,
    forFile(f: string): FileConfig {
      const own = files.get(path.resolve(f));
      if (!own) return { ...base, problems };
      const more: Diagnostic[] = [];
      const mine = resolveSection({ config: own.config ?? top.config, set: own.set ?? top.set, model: own.model ?? top.model }, ` (files."${path.relative(root, f)}")`, more);
      return { ...mine, problems: [...problems, ...more] };
    },
  };
}
