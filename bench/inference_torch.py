"""The PyTorch side of bench/inference.ts: the upstream STDiT3 (Open-Sora v1.2.0) in eager mode on the
same weights and inputs as sorac, driven one forward at a time so that the two sides interleave.

    /usr/bin/python3 bench/inference_torch.py CONFIG_JSON WEIGHTS.safetensors INPUTS.safetensors OUT.safetensors THREADS

Reads commands on stdin, one per line: `run` times one forward (eval, torch.no_grad(), float32) and
answers `{"s": seconds}`; the first forward's output is written to OUT (for the parity line).
Needs the upstream code exported to $OPEN_SORA_ROOT/os-v1.2.0 (see tests/fixtures/golden-extra/README.md);
the third-party imports are the golden harness's shims (flash-attn/xformers/apex kernels off).
Debian's python3-torch uses the system BLAS: with libopenblas0-pthread installed that is OpenBLAS.
"""
import importlib.util
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HARNESS = os.path.join(HERE, "..", "tests", "fixtures", "golden-extra", "harness", "make_extra_goldens.py")
spec = importlib.util.spec_from_file_location("golden_harness", HARNESS)
h = importlib.util.module_from_spec(spec)
spec.loader.exec_module(h)
import torch  # noqa: E402  (after the harness put its shims on sys.path)


def main():
    config_path, weights, inputs_path, out_path, threads = sys.argv[1:6]
    torch.set_num_threads(int(threads))
    root = os.environ.get("OPEN_SORA_ROOT")
    if not root:
        raise SystemExit("set OPEN_SORA_ROOT to the directory holding os-v1.2.0/opensora (see tests/fixtures/golden-extra/README.md)")
    mod = h.load_upstream(root, "v1.2.0", "models.stdit.stdit3")
    config = json.load(open(config_path))
    model = mod.STDiT3(mod.STDiT3Config(**config)).eval()
    model.load_state_dict(h.read_safetensors(weights), strict=True)
    inputs = h.read_safetensors(inputs_path)
    print(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "params": sum(p.numel() for p in model.parameters())}), flush=True)
    first = True
    for line in sys.stdin:
        if line.strip() != "run":
            continue
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model(**inputs)
        s = time.perf_counter() - t0
        if first:
            h.save_safetensors(out_path, {"output": out.float().contiguous()})
            first = False
        print(json.dumps({"s": s}), flush=True)


if __name__ == "__main__":
    main()
