#!/usr/bin/env bash
# The GPU check, on a fresh Linux machine with an NVIDIA GPU, a CUDA 13 driver, Python with PyTorch and
# NVIDIA's CUDA 13 wheels, and no network and no node (bench/gpu/README.md). Run from the sorac checkout,
# with the parts made by bench/gpu/pack.sh in .gpu-bundle/ (or SORAC_GPU_BUNDLE):
#
#   bench/gpu/run.sh --check                      which parts are here and intact (exit 3 when some are missing)
#   bench/gpu/run.sh [--models stdit3,vae,t5] [--runs 10] [--warmup 3] [--skip-parity] [--skip-timing]
#                    [--generate [--steps 30]]       also a whole `sorac generate` of the 1.2 clip on the weights the
#                                                 timing step wrote (in this call or an earlier one on this machine)
#   bench/gpu/run.sh --stub DIR --tiny            dry run on a CPU machine: stand-in CUDA libraries from
#                                                 bench/gpu/make-stub-cuda.py, tiny models, PyTorch on the CPU
#
# Steps: verify and unpack the parts (once per bundle) into .gpu-run/ (SORAC_GPU_WORK); node and onnxruntime
# from the bundle; LD_LIBRARY_PATH from the machine's Python nvidia/cu13/lib and nvidia/cudnn/lib;
# NVIDIA_TF32_OVERRIDE=0; sorac doctor; every golden parity case on CUDA; then per model the PyTorch side
# (torch_bench.py: real upstream code, bf16, eager, SDPA attention; writes weights and inputs) and sorac on
# the same files; one table. Results (JSON, the table, the log) go to $OUT when set, else .gpu-run/results.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BUNDLE=${SORAC_GPU_BUNDLE:-$ROOT/.gpu-bundle}
WORK=${SORAC_GPU_WORK:-$ROOT/.gpu-run}
export OUT=${OUT:-$WORK/results}
CHECK=0 STUB= TINY=0 MODELS=stdit3,vae,t5 RUNS=10 WARMUP=3 PARITY=1 TIMING=1 GENERATE=0 STEPS=30
while [ $# -gt 0 ]; do
  case "$1" in
    --check) CHECK=1 ;;
    --stub) STUB=$2; shift ;;
    --tiny) TINY=1 ;;
    --models) MODELS=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --skip-parity) PARITY=0 ;;
    --skip-timing) TIMING=0 ;;
    --generate) GENERATE=1 ;;
    --steps) STEPS=$2; shift ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$OUT" "$WORK"
exec > >(tee -a "$OUT/run.log") 2>&1
stamp() { echo "[$(date +%H:%M:%S)] $*"; }

# 1. the parts
[ -f "$BUNDLE/PARTS" ] && [ -f "$BUNDLE/SHA256SUMS" ] || { echo "no $BUNDLE/PARTS or SHA256SUMS: carry the bundle's PARTS and SHA256SUMS files" >&2; exit 3; }
missing=()
for p in $(cat "$BUNDLE/PARTS"); do [ -f "$BUNDLE/$p" ] || missing+=("$p"); done
present=$(cd "$BUNDLE" && ls part-* 2>/dev/null)
if [ -n "$present" ]; then
  (cd "$BUNDLE" && for p in $present; do grep "  $p\$" SHA256SUMS; done | sha256sum -c --quiet -) || { echo "a part is damaged: send it again" >&2; exit 3; }
fi
if [ ${#missing[@]} -gt 0 ]; then
  stamp "parts present and intact: $(cd "$BUNDLE" && ls part-* 2>/dev/null | tr '\n' ' '); missing: ${missing[*]}"
  exit 3
fi
stamp "all $(wc -l < "$BUNDLE/PARTS") parts present and intact"
[ $CHECK = 1 ] && exit 0

# 2. unpack once per bundle
ID=$(sha256sum "$BUNDLE/SHA256SUMS" | cut -c1-16)
RT="$WORK/rt"
if [ "$(cat "$WORK/.bundle-id" 2>/dev/null)" != "$ID" ]; then
  stamp "unpacking into $RT"
  rm -rf "$RT" && mkdir -p "$RT"
  unxz() { if command -v xz >/dev/null; then xz -dc; else python3 -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.stdin.buffer), sys.stdout.buffer, 1 << 20)"; fi; }
  (cd "$BUNDLE" && cat $(cat PARTS)) | unxz | tar -x -C "$RT" || { echo "unpacking failed" >&2; exit 3; }
  (cd "$RT" && sha256sum -c --quiet SHA256SUMS) || { echo "unpacked files do not match their SHA256SUMS" >&2; exit 3; }
  echo "$ID" > "$WORK/.bundle-id"
fi
if [ -e node_modules ] && [ ! -L node_modules ]; then echo "$ROOT/node_modules exists: run the check in a clean copy of the checkout" >&2; exit 2; fi
ln -sfn "$RT/node_modules" node_modules
mkdir -p dist && cp "$RT/dist/gpu-bench.mjs" dist/gpu-bench.mjs
export PATH="$RT/node/bin:$PATH"
export OPEN_SORA_ROOT="$RT/upstream" DIFFUSERS_ROOT="$RT/upstream/diffusers"
stamp "node $(node --version)"

# 3. the CUDA libraries: the machine's Python wheels (CUDA 13 layout), or the stand-ins
if [ -n "$STUB" ]; then
  export LD_LIBRARY_PATH="$(cd "$STUB" && pwd)"
  TORCH_DEVICE=cpu
else
  SITE=$(python3 -c 'import site; print("\n".join(site.getsitepackages()))' 2>/dev/null | while read -r d; do [ -d "$d/nvidia" ] && echo "$d" && break; done)
  for d in "$SITE/nvidia/cudnn/lib" "$SITE/nvidia/cu13/lib"; do [ -d "$d" ] && LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; done
  export LD_LIBRARY_PATH
  TORCH_DEVICE=cuda
fi
export NVIDIA_TF32_OVERRIDE=0
stamp "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=index,name,driver_version,memory.total,compute_cap --format=csv,noheader

# 4. doctor, parity, timing (each step goes on when the previous one fails: everything is reported)
stamp "sorac doctor"
node dist/gpu-bench.mjs doctor
if [ $PARITY = 1 ]; then
  stamp "golden parity on CUDA"
  node dist/gpu-bench.mjs parity --device cuda
fi
if [ $TIMING = 1 ]; then
  BENCH="$WORK/bench"
  mkdir -p "$BENCH"
  for m in ${MODELS//,/ }; do
    stamp "PyTorch: $m"
    python3 -u bench/gpu/torch_bench.py --model "$m" --out "$BENCH" --device "$TORCH_DEVICE" --runs "$RUNS" --warmup "$WARMUP" $([ $TINY = 1 ] && echo --tiny)
  done
  stamp "sorac: the same models, weights and inputs"
  node dist/gpu-bench.mjs time "$BENCH" --device cuda
  stamp "table"
  node dist/gpu-bench.mjs table "$BENCH"
fi
if [ $GENERATE = 1 ]; then
  stamp "sorac generate: the 1.2 clip (240p, 51 frames, CFG, bf16, $STEPS steps)"
  node dist/gpu-bench.mjs generate "$WORK/bench" --device cuda --steps "$STEPS"
fi
stamp "done; results in $OUT"
