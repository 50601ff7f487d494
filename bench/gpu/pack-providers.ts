/**
 * bench/gpu/pack.sh's helper: copy the pinned, verified CUDA provider into a bundle's onnxruntime-node
 * binary directory (`sorac setup cuda --copy`, aimed at a directory other than this checkout's).
 *
 *   npx tsx bench/gpu/pack-providers.ts BIN_DIR      (SORAC_CUDA_PROVIDER=<.tgz|.nupkg|dir> to bring the file)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { installCudaProvider } from '../../runtime/devices/install.ts';

const binDir = process.argv[2];
if (!binDir) throw new Error('usage: pack-providers.ts BIN_DIR');
const version = JSON.parse(readFileSync(join(binDir, '..', '..', '..', '..', 'package.json'), 'utf8')).version as string;
const r = await installCudaProvider({ binDir, ortVersion: version, copy: true, ...(process.env.SORAC_CUDA_PROVIDER ? { from: process.env.SORAC_CUDA_PROVIDER } : {}), onProgress: (s) => process.stderr.write(`${s}\n`) });
for (const f of r.files) console.log(`${f.name} ${f.size} ${f.sha256}`);
