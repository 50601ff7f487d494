/**
 * `sorac inspect WEIGHTS [--json]`: what a checkpoint holds, from headers alone — format, files,
 * tensor count, bytes, dtypes, a key listing with shapes (layer indices collapsed), and for
 * Open-Sora training dirs the epoch/step and which parts are present.
 */
import { DTYPE_SIZE } from '../../core/dtype.ts';
import { collapseKeys, formatBytes, openWeights, renderCollapsed, type TensorStore } from '../../api/weights.ts';
import type { RegisterCommand } from '../command.ts';
import { usageError } from '../io.ts';
import { printable } from '../../core/printable.ts';

interface InspectOpts {
  json?: boolean;
  part?: string;
  container?: string;
  raw?: boolean;
  cacheDir?: string;
  revision?: string;
  variant?: string;
  all?: boolean;
}

export function inspectData(store: TensorStore) {
  const dtypes: Record<string, { tensors: number; bytes: number; params: number }> = {};
  let bytes = 0;
  let params = 0;
  for (const t of store.tensors.values()) {
    const d = (dtypes[t.dtype] ??= { tensors: 0, bytes: 0, params: 0 });
    d.tensors++;
    d.bytes += t.byteLength;
    d.params += t.byteLength / DTYPE_SIZE[t.dtype];
    bytes += t.byteLength;
    params += t.byteLength / DTYPE_SIZE[t.dtype];
  }
  const r = store.resolved;
  const tr = r?.training;
  return {
    spec: r?.spec,
    path: r?.path,
    via: r?.via,
    hub: r?.hub,
    format: store.format,
    files: store.files,
    tensorCount: store.tensors.size,
    parameters: params,
    bytes,
    dtypes,
    metadata: store.metadata,
    training: tr
      ? { dir: tr.dir, epoch: tr.epoch, step: tr.step, globalStep: tr.globalStep, parts: tr.parts, loaded: tr.chosen }
      : undefined,
    notes: store.notes,
    extras: store.extras,
    keys: collapseKeys([...store.tensors.values()].map((t) => ({ key: t.key, detail: `[${t.shape.join(',')}] ${t.dtype}` }))).map((l) => ({
      pattern: l.pattern,
      detail: l.detail,
      count: l.count,
    })),
    tensors: Object.fromEntries(
      [...store.tensors.values()].map((t) => [t.key, { shape: t.shape, dtype: t.dtype, byteLength: t.byteLength, file: t.file, ...(t.offset !== undefined ? { offset: t.offset } : {}) }]),
    ),
  };
}

export function renderInspect(d: ReturnType<typeof inspectData>, opts: { all?: boolean } = {}): string {
  let s = '';
  s += `weights:  ${d.spec}\n`;
  if (d.path && d.path !== d.spec) s += `resolved: ${d.path}${d.via ? ` (${d.via})` : ''}\n`;
  if (d.hub) s += `hub:      ${d.hub.repo}@${d.hub.revision} → commit ${d.hub.commit} in ${d.hub.cache}\n`;
  s += `format:   ${d.format}\n`;
  s += `files:    ${d.files.length}\n`;
  for (const f of d.files) s += `  ${f}\n`;
  s += `tensors:  ${d.tensorCount}   parameters: ${d.parameters.toLocaleString('en-US')}   bytes: ${formatBytes(d.bytes)}\n`;
  s += `dtypes:   ${Object.entries(d.dtypes).map(([k, v]) => `${k} ×${v.tensors} (${formatBytes(v.bytes)})`).join(', ') || '-'}\n`;
  if (d.training) {
    const p = d.training.parts;
    const mark = (b: unknown) => (b ? 'yes' : 'no');
    s += `training: epoch ${d.training.epoch ?? '?'}, step ${d.training.step ?? '?'}, global step ${d.training.globalStep ?? '?'} (loaded: ${d.training.loaded})\n`;
    s += `  parts: model/ ${mark(p.model)}, ${p.ema ?? 'ema.pt|ema.safetensors'} ${mark(p.ema)}, optimizer/ ${mark(p.optimizer)}, lr_scheduler ${mark(p.lrScheduler)}, sampler ${mark(p.sampler)}, running_states.json ${mark(p.runningStates)}, master.safetensors ${mark(p.master)}\n`;
  }
  const meta = Object.entries(d.metadata).filter(([k]) => k !== 'running_states');
  if (meta.length) s += `metadata: ${meta.map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(', ').slice(0, 400)}\n`;
  if (d.notes.length) {
    s += 'notes:\n';
    for (const n of d.notes) s += `  - ${n}\n`;
  }
  const extras = Object.entries(d.extras);
  if (extras.length) {
    s += 'non-tensor data:\n';
    const shown = opts.all ? extras : extras.slice(0, 20);
    for (const [k, v] of shown) s += `  ${k || '(root)'}: ${JSON.stringify(v).slice(0, 200)}\n`;
    if (shown.length < extras.length) s += `  … ${extras.length - shown.length} more (--all or --json)\n`;
  }
  if (d.keys.length) {
    s += `keys (${d.tensorCount} tensors, ${d.keys.length} lines with layer indices collapsed):\n`;
    s += renderCollapsed(
      d.keys.map((k) => ({ ...k, keys: [] })),
      '  ',
      opts.all ? Infinity : 200,
    );
  }
  // keys, metadata and paths come from the file: never send its control characters to the terminal
  return printable(s);
}

export const registerInspect: RegisterCommand = (program, io, setExit) => {
  program
    .command('inspect')
    .description('show what a checkpoint holds (format, files, tensors, dtypes, keys) from headers alone; offline')
    .argument('<weights>', 'file, directory, Open-Sora training dir, or hub id org/name[@rev][/file] (from the local hub cache)')
    .option('--json', 'machine-readable output')
    .option('--part <part>', 'training dirs: ema (default) or model')
    .option('--container <name>', 'load this top-level container of a nested torch file (e.g. model when it has ema and model)')
    .option('--raw', 'do not unwrap containers or strip a module. prefix')
    .option('--cache-dir <dir>', 'hub cache to search first (default: $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub)')
    .option('--revision <rev>', 'hub revision (branch, tag or commit) when the id has no @rev')
    .option('--variant <name>', 'weight variant, e.g. fp16 → model.fp16.safetensors')
    .option('--all', 'list every key line (default: first 200)')
    .action(async (weights: string, o: InspectOpts) => {
      if (o.part !== undefined && o.part !== 'ema' && o.part !== 'model') throw usageError(`--part must be "ema" or "model" (got "${o.part}")`);
      let store: TensorStore | undefined;
      try {
        store = await openWeights(weights, {
          cwd: io.cwd,
          part: o.part as 'ema' | 'model' | undefined,
          container: o.container,
          unwrap: !o.raw,
          cacheDir: o.cacheDir,
          revision: o.revision,
          variant: o.variant,
        });
        const d = inspectData(store);
        if (o.json) io.stdout(JSON.stringify({ ok: true, ...d }, null, 2) + '\n');
        else io.stdout(renderInspect(d, { all: o.all }));
        setExit(0);
      } finally {
        await store?.close();
      }
    });
};
