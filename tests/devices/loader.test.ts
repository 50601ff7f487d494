/**
 * The ELF reader and the dynamic-loader emulation: checked against the real system (readelf on real
 * libraries, `ldconfig -p` against our /etc/ld.so.cache parser) where those tools exist, and
 * against fake layouts for the search order ld.so documents.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ElfFormatError, parseElfDynamic, readElfDynamic } from '../../runtime/devices/elf.ts';
import { defaultLibraryDirs, ldconfigList, type LoaderEnv, parseLdSoCache, resolveLibrary, splitSearchPath } from '../../runtime/devices/loader.ts';
import { makeElf, writeElf } from './helpers.ts';

const hasReadelf = spawnSync('readelf', ['--version']).status === 0;
const ortLib = join(import.meta.dirname, '..', '..', 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux', 'x64', 'libonnxruntime.so.1');

/** readelf -d, parsed: NEEDED, SONAME, RUNPATH. */
function readelf(path: string): { needed: string[]; soname?: string; runpath: string[] } {
  const out = spawnSync('readelf', ['-dW', path], { encoding: 'utf8' }).stdout;
  const needed = [...out.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]!);
  const soname = /\(SONAME\)\s+Library soname: \[([^\]]+)\]/.exec(out)?.[1];
  const runpath = /\(RUNPATH\)\s+Library runpath: \[([^\]]+)\]/.exec(out)?.[1]?.split(':') ?? [];
  return { needed, ...(soname ? { soname } : {}), runpath };
}

describe('ELF reader', () => {
  it.skipIf(!hasReadelf || process.platform !== 'linux')('agrees with binutils readelf on real libraries (onnxruntime, libc, node)', () => {
    const files = [ortLib, '/lib/x86_64-linux-gnu/libc.so.6', '/lib/x86_64-linux-gnu/libstdc++.so.6', process.execPath].filter((f) => existsSync(f));
    expect(files.length).toBeGreaterThanOrEqual(2);
    for (const f of files) {
      const ours = readElfDynamic(f);
      const ref = readelf(f);
      expect(ours.needed, f).toEqual(ref.needed);
      expect(ours.soname, f).toEqual(ref.soname);
      expect(ours.runpath, f).toEqual(ref.runpath);
      expect(ours.bits).toBe(64);
    }
    // onnxruntime's core finds its providers' neighbours through RUNPATH $ORIGIN (the providers themselves have none)
    if (existsSync(ortLib)) expect(readElfDynamic(ortLib).runpath).toEqual(['$ORIGIN']);
  });

  it('reads constructed objects of both classes, and rejects what is not ELF', () => {
    const e = parseElfDynamic(makeElf({ soname: 'libx.so.3', needed: ['liba.so.1', 'libb.so.2'], runpath: ['$ORIGIN', '/opt/y'] }));
    expect(e).toEqual({ bits: 64, machine: 62, type: 3, soname: 'libx.so.3', needed: ['liba.so.1', 'libb.so.2'], runpath: ['$ORIGIN', '/opt/y'], rpath: [] });
    expect(parseElfDynamic(makeElf({ bits: 32, machine: 3, needed: ['libc.so.6'] }))).toMatchObject({ bits: 32, machine: 3, needed: ['libc.so.6'] });
    expect(() => parseElfDynamic(new TextEncoder().encode('/* GNU ld script */ GROUP ( libc.so.6 )'.padEnd(80)))).toThrow(ElfFormatError);
    expect(() => parseElfDynamic(makeElf({ needed: ['a'] }).slice(0, 70))).toThrow(ElfFormatError);
  });
});

describe('dynamic loader emulation', () => {
  it.skipIf(process.platform !== 'linux' || !existsSync('/etc/ld.so.cache'))('parses /etc/ld.so.cache exactly as ldconfig -p lists it', () => {
    const ref = ldconfigList();
    expect(ref.size).toBeGreaterThan(10);
    const ours = parseLdSoCache(readFileSync('/etc/ld.so.cache'));
    expect(Object.fromEntries([...ours].sort())).toEqual(Object.fromEntries([...ref].sort()));
  });

  it('searches LD_LIBRARY_PATH, then RUNPATH ($ORIGIN), then the cache, then the default dirs; skips wrong-machine files', () => {
    const root = mkdtempSync(join(tmpdir(), 'sorac-ld-'));
    const lib = (dir: string, name: string, machine = 62) => writeElf(join(root, dir, name), { soname: name, machine });
    lib('ld1', 'libfoo.so.1');
    lib('cache', 'libfoo.so.1');
    lib('default', 'libfoo.so.1');
    lib('default', 'libbar.so.2');
    lib('arm', 'libbaz.so.3', 183); // aarch64: skipped by an x86-64 loader
    lib('default', 'libbaz.so.3');
    lib('origin', 'libqux.so.4');
    const env: LoaderEnv = { ldLibraryPath: `:${join(root, 'arm')}:${join(root, 'ld1')}`, cache: new Map([['libfoo.so.1', [join(root, 'cache', 'libfoo.so.1')]], ['libbar.so.2', [join(root, 'missing', 'libbar.so.2')]]]), defaultDirs: [join(root, 'default')], machine: 62, bits: 64 };
    expect(resolveLibrary('libfoo.so.1', env)).toEqual({ soname: 'libfoo.so.1', path: join(root, 'ld1', 'libfoo.so.1'), via: 'LD_LIBRARY_PATH' });
    expect(resolveLibrary('libfoo.so.1', { ...env, ldLibraryPath: undefined })?.via).toBe('ld.so.cache');
    expect(resolveLibrary('libbar.so.2', env)).toEqual({ soname: 'libbar.so.2', path: join(root, 'default', 'libbar.so.2'), via: 'default' });
    expect(resolveLibrary('libbaz.so.3', env)?.path).toBe(join(root, 'default', 'libbaz.so.3'));
    expect(resolveLibrary('libqux.so.4', env)).toBeUndefined();
    expect(resolveLibrary('libqux.so.4', env, { path: join(root, 'origin', 'libprovider.so'), runpath: ['$ORIGIN'] })?.via).toBe('RUNPATH');
    expect(splitSearchPath('/a::/b;/c')).toEqual(['/a', '/b', '/c']);
    expect(defaultLibraryDirs('x64')).toContain('/usr/lib/x86_64-linux-gnu');
  });
});
