/**
 * PNG encoding of 8-bit RGB images (the contact sheet `sorac generate` writes beside a video).
 * Written with node's zlib (deflate + crc32) rather than a dependency: the encoder is the signature,
 * three chunks and filter byte 0 per row (PNG spec, ISO/IEC 15948 §5, §11).
 */
import { crc32, deflateSync } from 'node:zlib';

export interface RgbImage {
  readonly width: number;
  readonly height: number;
  /** height * width * 3 bytes, row-major, RGB */
  readonly data: Uint8Array;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'ascii');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0);
  return Buffer.concat([head, data, crc]);
}

/** Encode an RGB image as PNG bytes (deterministic: same pixels, same bytes). */
export function encodePng(img: RgbImage): Buffer {
  const { width: w, height: h, data } = img;
  if (!(Number.isSafeInteger(w) && Number.isSafeInteger(h) && w > 0 && h > 0) || data.length !== w * h * 3) throw new RangeError(`encodePng: ${w}x${h} RGB needs ${w * h * 3} bytes, got ${data.length}`);
  const raw = Buffer.alloc(h * (1 + w * 3));
  for (let y = 0; y < h; y++) {
    raw[y * (1 + w * 3)] = 0; // filter: none
    raw.set(data.subarray(y * w * 3, (y + 1) * w * 3), y * (1 + w * 3) + 1);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: truecolour
  ihdr[10] = 0;
  ihdr[11] = 0;
  ihdr[12] = 0;
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([sig, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw, { level: 9 })), chunk('IEND', new Uint8Array(0))]);
}
