/**
 * Video files from RGB frames, through `ffmpeg` (found on PATH, or at $SORAC_FFMPEG): raw RGB frames on
 * stdin, H.264 in an MP4 container (yuv420p, so every player shows it; odd sizes padded by one pixel),
 * bit-exact flags so the same frames give the same file. Written to a temp sibling and renamed into
 * place: a failed or interrupted encode leaves nothing that looks finished.
 * Without ffmpeg, `writeFrames` writes the frames as numbered PNGs in a directory (also atomically).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { existsSync, statSync } from 'node:fs';
import { fsyncDir, tempSibling } from '../../core/atomic.ts';
import { SoracError } from '../../core/errors.ts';
import { encodePng, type RgbImage } from './png.ts';

/** The ffmpeg executable to use, or undefined when there is none. */
export function findFfmpeg(env: Readonly<Record<string, string | undefined>> = process.env): string | undefined {
  const explicit = env.SORAC_FFMPEG;
  if (explicit) return existsSync(explicit) ? explicit : undefined;
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, 'ffmpeg');
    try {
      if (statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** ffmpeg's version line (for reports), or undefined. */
export function ffmpegVersion(bin: string): string | undefined {
  const r = spawnSync(bin, ['-version'], { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? r.stdout.split('\n')[0] : undefined;
}

/** Encode frames (all the same size) as an H.264 MP4 at `path`, atomically. */
export async function writeMp4(path: string, frames: readonly RgbImage[], fps: number, opts: { ffmpeg: string; signal?: AbortSignal }): Promise<void> {
  if (!frames.length) throw new SoracError('SORA8304', `no frames to write to ${path}`);
  const { width: w, height: h } = frames[0]!;
  const tmp = tempSibling(path);
  const args = [
    '-hide_banner', '-loglevel', 'error', '-nostdin', '-y',
    '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${w}x${h}`, '-r', String(fps), '-i', 'pipe:0',
    '-vf', 'pad=ceil(iw/2)*2:ceil(ih/2)*2', '-c:v', 'libx264', '-preset', 'medium', '-crf', '16', '-pix_fmt', 'yuv420p', '-threads', '1',
    '-fflags', '+bitexact', '-flags:v', '+bitexact', '-map_metadata', '-1', '-movflags', '+faststart', '-f', 'mp4', tmp,
  ];
  const child = spawn(opts.ffmpeg, args, { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const abort = () => child.kill('SIGKILL');
  opts.signal?.addEventListener('abort', abort, { once: true });
  const done = new Promise<number | null>((res, rej) => {
    child.on('error', rej);
    child.on('close', (code) => res(code));
  });
  try {
    for (const f of frames) {
      if (f.width !== w || f.height !== h) throw new SoracError('SORA8304', `frames differ in size (${f.width}x${f.height} vs ${w}x${h})`);
      if (!child.stdin.write(f.data)) await new Promise<void>((r) => child.stdin.once('drain', () => r()));
    }
    child.stdin.end();
    const code = await done;
    if (opts.signal?.aborted) throw new SoracError('SORA7009', 'interrupted while encoding the video');
    if (code !== 0) throw new SoracError('SORA8304', `ffmpeg failed to encode ${path} (exit ${code}): ${stderr.trim().split('\n').slice(-3).join(' | ')}`, { hint: 'check that this ffmpeg has libx264 (`ffmpeg -encoders | grep 264`), or pass --frames to write PNG frames instead' });
    await rename(tmp, path);
    await fsyncDir(join(path, '..'));
  } catch (e) {
    child.kill('SIGKILL');
    await rm(tmp, { force: true });
    throw e;
  } finally {
    opts.signal?.removeEventListener('abort', abort);
  }
}

/** Write frames as `frame_0000.png` ... in directory `dir`, atomically (temp dir, then rename). */
export async function writeFrames(dir: string, frames: readonly RgbImage[]): Promise<void> {
  const tmp = tempSibling(dir);
  await mkdir(tmp);
  try {
    for (const [i, f] of frames.entries()) await writeFile(join(tmp, `frame_${String(i).padStart(4, '0')}.png`), encodePng(f));
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}
