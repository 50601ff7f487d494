/**
 * Named tensors in and out of `.safetensors` files, for `sorac run` inputs and outputs.
 *
 * Reading goes through the checked reader (runtime/safetensors.ts); writing goes through the
 * shared atomic writer (runtime/safetensors-writer.ts: temp file in the target directory, fsync,
 * rename; nothing is left behind on failure).
 */
import { openSafetensors } from './safetensors.ts';
import { writeSafetensors, type WrittenFile } from './safetensors-writer.ts';
import { type HostTensor, hostBytes, hostFromBytes } from '../../core/host-tensor.ts';

/** Read every tensor of a safetensors file into host tensors (file order). */
export async function readTensorsFile(path: string): Promise<{ tensors: Map<string, HostTensor>; metadata: Readonly<Record<string, string>> }> {
  const f = await openSafetensors(path);
  try {
    const tensors = new Map<string, HostTensor>();
    for (const [key, info] of f.tensors) tensors.set(key, hostFromBytes(info.dtype, info.shape, await f.read(key)));
    return { tensors, metadata: f.metadata };
  } finally {
    await f.close();
  }
}

/** Write host tensors to `path` atomically (sorted keys, aligned data; see safetensors-writer). */
export async function writeTensorsFile(
  path: string,
  tensors: ReadonlyMap<string, HostTensor> | Readonly<Record<string, HostTensor>>,
  metadata?: Readonly<Record<string, string>>,
): Promise<WrittenFile> {
  const list = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors as Record<string, HostTensor>);
  const out = new Map(list.map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape, data: hostBytes(t) }] as const));
  return writeSafetensors(path, out, metadata ? { metadata } : {});
}
