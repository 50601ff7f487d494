#!/usr/bin/env python3
"""Stand-in CUDA 13 libraries for onnxruntime's CUDA provider, for machines WITHOUT a GPU.

    python3 bench/gpu/make-stub-cuda.py PROVIDER.so OUT_DIR     (needs readelf and gcc)

With LD_LIBRARY_PATH=OUT_DIR, onnxruntime's real CUDA execution provider loads, is created, and
partitions graphs (the verbose log's "Node placements" say which node runs on CUDA and which on
the CPU); sessions even "run", but every kernel launch is a no-op and outputs are zeros. That makes
kernel placement testable on a CPU machine (bench/gpu/placement.ts, `bench/gpu/run.sh --stub`);
it says nothing about numbers, and `sorac doctor` reports such libraries as not computing.

Every symbol the provider imports (readelf --dyn-syms: UND name@library) becomes a function in a
library of that soname, with the version node the provider asks for; those that must return data
(device count, memory info, allocations, copies, handles, error strings) do so plausibly: one
device, 80 GiB, calloc/memmove for device memory. libcurand.so.10 and libcuda.so.1 are NEEDED but
nothing is imported from them: empty libraries. cuDNN is not provided (the first convolution that
runs fails with "cuDNN ... not found", as on a machine without cuDNN).
"""
import collections
import os
import re
import subprocess
import sys

OVERRIDES = {
    "cudaGetDeviceCount": "int cudaGetDeviceCount(int*c){*c=1;return 0;}",
    "cudaGetDevice": "int cudaGetDevice(int*d){*d=0;return 0;}",
    "cudaDriverGetVersion": "int cudaDriverGetVersion(int*v){*v=13000;return 0;}",
    "cudaRuntimeGetVersion": "int cudaRuntimeGetVersion(int*v){*v=13000;return 0;}",
    "cudaMalloc": "int cudaMalloc(void**p,size_t n){*p=calloc(1,n?n:1);return 0;}",
    "cudaMallocHost": "int cudaMallocHost(void**p,size_t n){*p=calloc(1,n?n:1);return 0;}",
    "cudaHostAlloc": "int cudaHostAlloc(void**p,size_t n,unsigned f){*p=calloc(1,n?n:1);return 0;}",
    "cudaMallocFromPoolAsync": "int cudaMallocFromPoolAsync(void**p,size_t n,void*a,void*b){*p=calloc(1,n?n:1);return 0;}",
    "cudaMemcpy": "int cudaMemcpy(void*d,const void*s,size_t n,int k){if(n)memmove(d,s,n);return 0;}",
    "cudaMemcpyAsync": "int cudaMemcpyAsync(void*d,const void*s,size_t n,int k,void*st){if(n)memmove(d,s,n);return 0;}",
    "cudaMemcpy2DAsync": "int cudaMemcpy2DAsync(char*d,size_t dp,const char*s,size_t sp,size_t w,size_t h,int k,void*st){for(size_t i=0;i<h;i++)memmove(d+i*dp,s+i*sp,w);return 0;}",
    "cudaMemset": "int cudaMemset(void*p,int v,size_t n){memset(p,v,n);return 0;}",
    "cudaMemsetAsync": "int cudaMemsetAsync(void*p,int v,size_t n,void*s){memset(p,v,n);return 0;}",
    "cudaMemGetInfo": "int cudaMemGetInfo(size_t*f,size_t*t){*f=*t=(size_t)80<<30;return 0;}",
    "cudaDeviceGetAttribute": "int cudaDeviceGetAttribute(int*v,int a,int d){*v=64;return 0;}",
    "cudaStreamCreate": "int cudaStreamCreate(void**s){*s=(void*)0x1000;return 0;}",
    "cudaStreamCreateWithFlags": "int cudaStreamCreateWithFlags(void**s,unsigned f){*s=(void*)0x1000;return 0;}",
    "cudaEventCreate": "int cudaEventCreate(void**s){*s=(void*)0x2000;return 0;}",
    "cudaEventCreateWithFlags": "int cudaEventCreateWithFlags(void**s,unsigned f){*s=(void*)0x2000;return 0;}",
    "cudaMemPoolCreate": "int cudaMemPoolCreate(void**s,const void*p){*s=(void*)0x3000;return 0;}",
    "cudaStreamIsCapturing": "int cudaStreamIsCapturing(void*s,int*st){*st=0;return 0;}",
    "cudaEventElapsedTime": "int cudaEventElapsedTime(float*ms,void*a,void*b){*ms=1;return 0;}",
    "cudaGetErrorName": 'const char* cudaGetErrorName(int e){return "stubErr";}',
    "cudaGetErrorString": 'const char* cudaGetErrorString(int e){return "stub error";}',
    "cudaOccupancyMaxActiveBlocksPerMultiprocessorWithFlags": "int cudaOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(int*n,const void*f,int b,size_t s,unsigned fl){*n=1;return 0;}",
    "cudaGetDeviceProperties": 'int cudaGetDeviceProperties(char*p,int d){strcpy(p,"STAND-IN GPU (no device)");return 0;}',
    "cudaGetDriverEntryPointByVersion": "int cudaGetDriverEntryPointByVersion(const char*s,void**f,unsigned v,unsigned long long fl,int*st){*f=0;if(st)*st=1;return 500;}",
    "cudaLibraryLoadData": "int cudaLibraryLoadData(void**l){*l=(void*)0x4000;return 0;}",
    "cudaLibraryGetKernel": "int cudaLibraryGetKernel(void**k){*k=(void*)0x5000;return 0;}",
    "__cudaRegisterFatBinary": "static void* fh[16]; void** __cudaRegisterFatBinary(void*c){return fh;}",
    "cublasCreate_v2": "int cublasCreate_v2(void**h){*h=(void*)0x6000;return 0;}",
    "cublasGetMathMode": "int cublasGetMathMode(void*h,int*m){*m=0;return 0;}",
    "cublasGetStatusName": 'const char* cublasGetStatusName(int e){return "stub";}',
    "cublasGetStatusString": 'const char* cublasGetStatusString(int e){return "stub";}',
    "cublasLtCreate": "int cublasLtCreate(void**h){*h=(void*)0x7000;return 0;}",
    "cublasLtMatmulDescCreate": "int cublasLtMatmulDescCreate(void**h){*h=(void*)0x7100;return 0;}",
    "cublasLtMatrixLayoutCreate": "int cublasLtMatrixLayoutCreate(void**h){*h=(void*)0x7200;return 0;}",
    "cublasLtMatmulPreferenceCreate": "int cublasLtMatmulPreferenceCreate(void**h){*h=(void*)0x7300;return 0;}",
    "cublasLtMatrixTransformDescCreate": "int cublasLtMatrixTransformDescCreate(void**h){*h=(void*)0x7400;return 0;}",
}


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    provider, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    syms = collections.defaultdict(list)
    text = subprocess.run(["readelf", "--dyn-syms", "-W", provider], check=True, capture_output=True, text=True).stdout
    for line in text.splitlines():
        m = re.search(r"\bUND\s+(\S+)@(lib\S+?)(?:\s+\(\d+\))?$", line)
        if m and m.group(1) not in syms[m.group(2)]:
            syms[m.group(2)].append(m.group(1))
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", subprocess.run(["readelf", "-dW", provider], check=True, capture_output=True, text=True).stdout)
    cuda_libs = [n for n in needed if re.match(r"lib(cuda|cudart|cublas|cublasLt|curand|cufft|nvrtc|nvJitLink)\.so", n)]
    for lib in cuda_libs:
        base = os.path.join(out, lib)
        with open(base + ".c", "w") as f:
            f.write("#include <stdlib.h>\n#include <string.h>\n")
            for s in syms.get(lib, []):
                f.write((OVERRIDES.get(s) or f"int {s}(){{return 0;}}") + "\n")
        args = ["gcc", "-shared", "-fPIC", "-O1", "-o", os.path.join(out, lib), base + ".c", f"-Wl,-soname,{lib}"]
        if syms.get(lib):
            with open(base + ".map", "w") as f:
                f.write(f"{lib} {{ global: *; }};\n")
            args.append(f"-Wl,--version-script,{base}.map")
        subprocess.run(args, check=True)
        print(f"{lib}: {len(syms.get(lib, []))} symbols")


if __name__ == "__main__":
    main()
