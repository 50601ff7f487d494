/**
 * Writing Open-Sora training checkpoint directories (`<exp>/epoch{E}-global_step{S}/`) in the layout
 * Open-Sora's loaders read (v1.2 and 2.0 variants: sharded model/ safetensors with an index, EMA as
 * ema.safetensors or a torch.save ema.pt, running_states.json, parts copied from an earlier step),
 * atomically: the directory is built under a temp name and renamed into place.
 */
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve as resolvePath } from 'node:path';
import { atomicWrite, fsyncDir, tempSibling, writeFully } from '../../core/atomic.ts';
import { SoracError } from '../../core/errors.ts';
import { writeSafetensors, type WriterTensor, type WriterTensors } from '../formats/safetensors-writer.ts';
import { writeTorchStateDict } from '../formats/torch-writer.ts';
import { DTYPE_SIZE } from '../../core/dtype.ts';
import { inspectCheckpoint, statOrNull } from './checkpoints.ts';

export interface WriteTrainingCheckpointOptions {
  epoch: number;
  /** step within the epoch (running_states.json "step") */
  step: number;
  globalStep: number;
  /** Open-Sora 2.0 names the dir after this (and writes it to running_states.json) */
  actualUpdateStep?: number;
  batchSize?: number | null;
  /** the model weights (→ model/ shards + model.safetensors.index.json) */
  model: WriterTensors;
  /** EMA weights (→ ema.safetensors, which Open-Sora 2.0's CheckpointIO.load prefers, or ema.pt) */
  ema?: WriterTensors;
  /** `pt` writes ema.pt (torch.save format), which Open-Sora v1.x `load()` requires; default `safetensors` */
  emaFormat?: 'safetensors' | 'pt';
  /** bytes per model shard (default 4096 MiB, Open-Sora's size_per_shard=4096) */
  shardSize?: number;
  /** carry these parts over byte-for-byte from an existing checkpoint dir (optimizer/, lr_scheduler, sampler, master.safetensors) */
  copyFrom?: string;
  /** extra running_states.json fields */
  extraRunningStates?: Record<string, unknown>;
  /** safetensors __metadata__ for the weight files */
  metadata?: Readonly<Record<string, string>>;
}

function writerEntries(t: WriterTensors): [string, WriterTensor][] {
  return t instanceof Map ? [...t.entries()] : Object.entries(t as Record<string, WriterTensor>);
}

/** Hand the writer pieces of at most 1 MiB: large single writes are several times slower through the page cache (bench/ckpt.ts). */
export function inPieces(t: WriterTensors): Map<string, WriterTensor> {
  const PIECE = 1 << 20;
  return new Map(
    writerEntries(t).map(([k, v]) => [
      k,
      {
        dtype: v.dtype,
        shape: v.shape,
        data: async function* () {
          let s: unknown = v.data;
          if (typeof s === 'function') s = await (s as () => unknown)();
          const split = function* (c: Uint8Array) {
            for (let o = 0; o < c.length; o += PIECE) yield c.subarray(o, Math.min(c.length, o + PIECE));
          };
          if (s instanceof Uint8Array) yield* split(s);
          else if (s && typeof (s as AsyncIterable<Uint8Array>)[Symbol.asyncIterator] === 'function') for await (const c of s as AsyncIterable<Uint8Array>) yield* split(c);
          else if (s && typeof (s as Iterable<Uint8Array>)[Symbol.iterator] === 'function') for (const c of s as Iterable<Uint8Array>) yield* split(c);
          else throw new TypeError(`tensor "${k}": data must be a Uint8Array, an (async) iterable of Uint8Array, or a function returning one`);
        },
      } satisfies WriterTensor,
    ]),
  );
}

async function copyTree(src: string, dst: string): Promise<void> {
  const s = await stat(src);
  if (s.isDirectory()) {
    await mkdir(dst);
    for (const n of await readdir(src)) await copyTree(join(src, n), join(dst, n));
    await fsyncDir(dst);
    return;
  }
  const from = await open(src, 'r');
  try {
    await atomicWrite(dst, async (fh) => {
      const buf = Buffer.allocUnsafe(1 << 20);
      let pos = 0;
      for (;;) {
        const { bytesRead } = await from.read(buf, 0, buf.length, pos);
        if (!bytesRead) break;
        await writeFully(fh, buf.subarray(0, bytesRead), pos);
        pos += bytesRead;
      }
    });
  } finally {
    await from.close();
  }
}

/**
 * Write `<expDir>/epoch{E}-global_step{S}/` the way Open-Sora 2.0's CheckpointIO does (model/ as
 * ColossalAI safetensors shards `model-0000K.safetensors` + `model.safetensors.index.json` with a
 * float MiB total_size, `ema.safetensors`, `running_states.json` last), atomically: everything goes
 * into a hidden temp dir next to it, every file and dir is fsynced, and the temp dir is renamed to
 * its final name. An existing checkpoint of that name is never overwritten.
 */
export async function writeTrainingCheckpoint(expDir: string, opts: WriteTrainingCheckpointOptions): Promise<{ dir: string; files: string[] }> {
  for (const [k, v] of [['epoch', opts.epoch], ['step', opts.step], ['globalStep', opts.globalStep]] as const)
    if (!Number.isInteger(v) || v < 0) throw new SoracError('SORA5104', `writeTrainingCheckpoint: ${k} must be a non-negative integer (got ${v})`);
  const nameStep = opts.actualUpdateStep ?? opts.globalStep;
  const name = `epoch${opts.epoch}-global_step${nameStep}`;
  const root = resolvePath(expDir);
  const final = join(root, name);
  if (await statOrNull(final)) throw new SoracError('SORA5103', `${final} already exists`, { hint: 'checkpoints are never overwritten; pick another step or delete it first', looked: [], path: final });
  await mkdir(root, { recursive: true });
  const tmp = tempSibling(final);
  await mkdir(tmp);
  const files: string[] = [];
  try {
    await mkdir(join(tmp, 'model'));
    const shardSize = opts.shardSize ?? 4096 * 1024 * 1024;
    const list = writerEntries(inPieces(opts.model));
    const groups: [string, WriterTensor][][] = [];
    let cur: [string, WriterTensor][] = [];
    let curSize = 0;
    for (const e of list) {
      const n = e[1].shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[e[1].dtype];
      if (cur.length && curSize + n > shardSize) {
        groups.push(cur);
        cur = [];
        curSize = 0;
      }
      cur.push(e);
      curSize += n;
    }
    groups.push(cur);
    const weightMap: Record<string, string> = {};
    let totalMiB = 0;
    for (let i = 0; i < groups.length; i++) {
      const shard = `model-${String(i + 1).padStart(5, '0')}.safetensors`;
      const w = await writeSafetensors(join(tmp, 'model', shard), new Map(groups[i]!), { metadata: opts.metadata });
      files.push(`model/${shard}`);
      for (const [k, t] of groups[i]!) {
        weightMap[k] = shard;
        totalMiB += (t.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[t.dtype]) / 1024 / 1024;
      }
      void w;
    }
    const index = JSON.stringify({ metadata: { total_size: totalMiB }, weight_map: weightMap }, null, 2) + '\n';
    await atomicWrite(join(tmp, 'model', 'model.safetensors.index.json'), (fh) => fh.writeFile(index).then(() => undefined));
    files.push('model/model.safetensors.index.json');
    await fsyncDir(join(tmp, 'model'));
    if (opts.ema) {
      if (opts.emaFormat === 'pt') {
        await writeTorchStateDict(join(tmp, 'ema.pt'), inPieces(opts.ema));
        files.push('ema.pt');
      } else {
        await writeSafetensors(join(tmp, 'ema.safetensors'), inPieces(opts.ema), { metadata: opts.metadata });
        files.push('ema.safetensors');
      }
    }
    if (opts.copyFrom) {
      const src = await inspectCheckpoint(opts.copyFrom);
      const torn = (['optimizer', 'lr_scheduler', 'sampler', 'master'] as const).filter((p) => src.parts[p] && !src.parts[p]!.ok);
      if (torn.length)
        throw new SoracError('SORA5102', `copyFrom ${src.dir}: ${torn.join(', ')} damaged: ${torn.flatMap((p) => src.parts[p]!.problems).join('; ')}`, { hint: 'carry the parts over from a complete checkpoint (`sorac ckpt latest`)', looked: [], path: src.dir });
      for (const n of ['optimizer', 'lr_scheduler', 'sampler', 'master.safetensors']) {
        const src = join(opts.copyFrom, n);
        if (!(await statOrNull(src))) continue;
        await copyTree(src, join(tmp, n));
        files.push(n);
      }
    }
    const rs: Record<string, unknown> = { epoch: opts.epoch, step: opts.step, global_step: opts.globalStep, batch_size: opts.batchSize ?? null };
    if (opts.actualUpdateStep !== undefined) rs.actual_update_step = opts.actualUpdateStep;
    Object.assign(rs, opts.extraRunningStates ?? {});
    const rsText = JSON.stringify(rs, null, 4);
    await atomicWrite(join(tmp, 'running_states.json'), (fh) => fh.writeFile(rsText).then(() => undefined));
    files.push('running_states.json');
    await fsyncDir(tmp);
    // what we publish must pass the same check `ckpt ls` / `latest` apply
    const self = await inspectCheckpoint(tmp);
    if (!self.complete) throw new Error(`writeTrainingCheckpoint produced an incomplete checkpoint (a bug): ${self.problems.join('; ')}`);
    try {
      await rename(tmp, final);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST') throw new SoracError('SORA5103', `${final} already exists`, { hint: 'checkpoints are never overwritten', looked: [], path: final });
      throw e;
    }
    await fsyncDir(root);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true }).catch(() => {});
    throw ioError(e, final);
  }
  return { dir: final, files };
}

/** Map a file-system error while writing `target` to a SoracError with a clear message and fix. */
export function ioError(e: unknown, target: string): unknown {
  if (e instanceof SoracError) return e;
  const code = (e as NodeJS.ErrnoException)?.code;
  const where = dirname(target);
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return new SoracError('SORA5105', `no space left on the device holding ${where} while writing ${basename(target)} (${code}); nothing was left at ${target}`, { hint: 'free space or write elsewhere (-o on another disk); the partial temp output was removed', looked: [], path: target });
    case 'EROFS':
      return new SoracError('SORA5105', `${where} is on a read-only file system (EROFS); nothing was written`, { hint: 'write to a writable location with -o', looked: [], path: target });
    case 'EACCES':
    case 'EPERM':
      return new SoracError('SORA5105', `permission denied writing into ${where} (${code}); nothing was written`, { hint: 'write to a directory you can write to, or fix its permissions', looked: [], path: target });
    case 'ENOENT':
      return new SoracError('SORA5105', `${where} does not exist (${code})`, { hint: 'create the output directory first', looked: [], path: target });
    case 'EISDIR':
    case 'ENOTEMPTY':
    case 'EEXIST':
      return new SoracError('SORA5103', `${target} is in the way (${code}: an existing directory or file of another kind)`, { hint: 'remove it or choose another output path', looked: [], path: target });
    case 'ENOTDIR':
      return new SoracError('SORA5105', `a component of ${where} is not a directory (${code})`, { hint: 'check the output path', looked: [], path: target });
    default:
      return e;
  }
}
