#!/usr/bin/env bash
# Build the pieces the GPU check needs on a machine with no network and no node (bench/gpu/README.md):
#
#   OPEN_SORA_ROOT=<dir with os-v1.2.0/opensora> DIFFUSERS_ROOT=<dir with src/diffusers (v0.27.2)> \
#   [SORAC_CUDA_PROVIDER=<provider .tgz/.nupkg/dir>] [SORAC_GPU_PART_SIZE=40M] bench/gpu/pack.sh [OUT_DIR]
#
# OUT_DIR (default .gpu-bundle, ignored by git) receives part-00, part-01, ... (one xz-compressed tar, split)
# plus SHA256SUMS (of the parts) and PARTS. Inside the tar: node (this machine's node binary), node_modules/
# {onnxruntime-node (linux-x64 only), onnxruntime-common}, the pinned CUDA provider, dist/gpu-bench.mjs (the
# bundled bench entry), upstream/ (the Open-Sora and diffusers sources the PyTorch side runs; carried, never
# committed), and SHA256SUMS of every file. Run it from a checkout with node_modules installed (npm ci).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-$ROOT/.gpu-bundle}
PART=${SORAC_GPU_PART_SIZE:-40M}
: "${OPEN_SORA_ROOT:?set OPEN_SORA_ROOT (holding os-v1.2.0/opensora)}"
: "${DIFFUSERS_ROOT:?set DIFFUSERS_ROOT (holding src/diffusers of diffusers v0.27.2)}"
[ -d "$OPEN_SORA_ROOT/os-v1.2.0/opensora" ] || { echo "missing $OPEN_SORA_ROOT/os-v1.2.0/opensora" >&2; exit 1; }
[ -d "$DIFFUSERS_ROOT/src/diffusers" ] || { echo "missing $DIFFUSERS_ROOT/src/diffusers" >&2; exit 1; }
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
cd "$ROOT"

echo "node $(node --version) from $(command -v node)"
mkdir -p "$STAGE/node/bin"
cp "$(readlink -f "$(command -v node)")" "$STAGE/node/bin/node"

echo "onnxruntime-node (linux-x64) and onnxruntime-common"
ORT="$STAGE/node_modules/onnxruntime-node"
mkdir -p "$ORT/bin/napi-v6/linux/x64" "$STAGE/node_modules/onnxruntime-common"
cp -r node_modules/onnxruntime-node/package.json node_modules/onnxruntime-node/dist "$ORT/"
cp node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1 node_modules/onnxruntime-node/bin/napi-v6/linux/x64/onnxruntime_binding.node "$ORT/bin/napi-v6/linux/x64/"
cp -r node_modules/onnxruntime-common/package.json node_modules/onnxruntime-common/dist "$STAGE/node_modules/onnxruntime-common/"

echo "CUDA provider (pinned, verified)"
npx tsx bench/gpu/pack-providers.ts "$ORT/bin/napi-v6/linux/x64"

echo "bench bundle"
mkdir -p "$STAGE/dist"
node -e "
require('esbuild').buildSync({ entryPoints: ['bench/gpu/main.ts'], outfile: '$STAGE/dist/gpu-bench.mjs', bundle: true, platform: 'node', format: 'esm', target: 'node20',
  external: ['onnxruntime-node', 'ts-morph', 'esbuild', 'tsx'], logLevel: 'warning', legalComments: 'none',
  banner: { js: \"import { createRequire as __soracCreateRequire } from 'node:module'; const require = __soracCreateRequire(import.meta.url);\" } });"

echo "upstream sources (Open-Sora v1.2.0 opensora/, diffusers v0.27.2 src/diffusers)"
mkdir -p "$STAGE/upstream/os-v1.2.0" "$STAGE/upstream/diffusers/src"
cp -r "$OPEN_SORA_ROOT/os-v1.2.0/opensora" "$STAGE/upstream/os-v1.2.0/"
cp -r "$DIFFUSERS_ROOT/src/diffusers" "$STAGE/upstream/diffusers/src/"
find "$STAGE/upstream" -name __pycache__ -prune -exec rm -rf {} +

(cd "$STAGE" && find . -type f ! -name SHA256SUMS -print0 | sort -z | xargs -0 sha256sum > SHA256SUMS)
du -sh "$STAGE"
rm -rf "$OUT"
mkdir -p "$OUT"
echo "compressing (xz -6) and splitting into $PART parts"
tar -C "$STAGE" -cf - . | xz -6 -T0 | split -b "$PART" -d -a 2 - "$OUT/part-"
(cd "$OUT" && ls part-* > PARTS && sha256sum part-* > SHA256SUMS)
ls -la "$OUT"
