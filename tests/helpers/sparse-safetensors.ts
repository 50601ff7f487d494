import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';

/** A safetensors file with this header and no data written: the file is sparse, its size what the offsets say. */
export function sparseSafetensors(path: string, tensors: Record<string, readonly number[]>, dtype = 'BF16'): string {
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const [k, shape] of Object.entries(tensors)) {
    const n = shape.reduce((a, b) => a * b, 1) * 2;
    header[k] = { dtype, shape, data_offsets: [off, off + n] };
    off += n;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const fd = openSync(path, 'w');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  writeSync(fd, len);
  writeSync(fd, json);
  ftruncateSync(fd, 8 + Buffer.byteLength(json) + off);
  closeSync(fd);
  return path;
}

