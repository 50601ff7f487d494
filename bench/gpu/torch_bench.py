#!/usr/bin/env python3
"""The PyTorch side of the GPU check: the REAL upstream Open-Sora 1.2 code (and transformers' T5), bf16,
eager, with PyTorch's fast attention, at the released sizes; it also writes the weights and inputs sorac
then runs on (so both sides compute the same model on the same data).

    python3 bench/gpu/torch_bench.py --model stdit3|vae|t5 --out DIR \\
        [--open-sora-root R] [--diffusers-root D] [--device cuda] [--runs 10] [--warmup 3] [--tiny]

  stdit3  STDiT3-XL/2 (opensora/models/stdit/stdit3.py @ v1.2.0), 240p (latent 30x53) x 51 frames (15
          latent frames), CFG batch 2, 300 text tokens; enable_flash_attn=True
  vae     VideoAutoencoderPipeline (opensora/models/vae/vae.py @ v1.2.0: the SDXL AutoencoderKL of
          diffusers v0.27.2 per frame, micro_batch_size 4, + VAE_Temporal_SD on micro_frame_size 17):
          decode of those 51 frames (latent [1, 4, 15, 30, 53])
  t5      T5-XXL encoder (transformers T5EncoderModel, t5-v1_1-xxl sizes), 1 x 300 tokens

Roots: OPEN_SORA_ROOT/os-v1.2.0/opensora (the tag's export) and DIFFUSERS_ROOT/src/diffusers (v0.27.2),
from arguments or the environment (bench/gpu/pack.sh carries both). Third-party packages missing on the
machine are replaced as in the golden generators: tests/fixtures/golden-extra/harness/shims (einops, timm,
rotary_embedding_torch, mmengine, ...), tests/fixtures/golden-sampler/harness/diffusers_loader.py, and
for attention bench/gpu/torch_shims (flash_attn and xformers through torch's scaled_dot_product_attention,
i.e. FlashAttention-2 / memory-efficient kernels: PyTorch's own fast attention).

Weights are random (seeded, drawn on the device): speed and memory do not depend on their values. Each
model appends an item to DIR/manifest.json: the sorac example and config, the weights/inputs files, and
the PyTorch timing (median of --runs after --warmup, CUDA-synchronised wall time) and peak memory
(torch.cuda.max_memory_allocated, and nvidia-smi's memory.used sampled during the runs).
--tiny: small configs and CPU-friendly sizes, to check this script end to end without a GPU.
"""
import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
EXTRA_HARNESS = os.path.join(REPO, "tests", "fixtures", "golden-extra", "harness")
SAMPLER_HARNESS = os.path.join(REPO, "tests", "fixtures", "golden-sampler", "harness")

import torch  # noqa: E402

# ------------------------------------------------------------------------------------------------
# files


def save_safetensors(path, tensors):
    """A safetensors file (bf16/f32/i64), tensors on any device."""
    codes = {torch.bfloat16: "BF16", torch.float32: "F32", torch.int64: "I64", torch.float16: "F16", torch.bool: "BOOL"}
    header, blobs, off = {}, [], 0
    for k in sorted(tensors):
        t = tensors[k].detach().contiguous().cpu()
        raw = t.view(torch.int16) if t.dtype in (torch.bfloat16, torch.float16) else t
        b = raw.numpy().tobytes()
        header[k] = {"dtype": codes[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def add_to_manifest(out, item, gpu):
    path = os.path.join(out, "manifest.json")
    m = json.load(open(path)) if os.path.exists(path) else {"items": []}
    m["items"] = [x for x in m["items"] if x["name"] != item["name"]] + [item]
    m["gpu"] = gpu
    m["torch_version"] = torch.__version__
    json.dump(m, open(path, "w"), indent=2)


# ------------------------------------------------------------------------------------------------
# timing


class SmiSampler:
    """nvidia-smi memory.used (MiB) every 50 ms, minus the value before the model was built."""

    def __init__(self, base):
        self.base, self.peak, self.p = base, None, None

    def __enter__(self):
        try:
            self.p = subprocess.Popen(["nvidia-smi", "--id=0", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-lms", "50"], stdout=subprocess.PIPE, text=True)
            threading.Thread(target=self._read, daemon=True).start()
        except OSError:
            self.p = None
        return self

    def _read(self):
        for line in self.p.stdout:
            if line.strip().isdigit():
                self.peak = max(self.peak or 0, int(line))

    def __exit__(self, *a):
        if self.p:
            self.p.kill()

    def value(self):
        return None if self.peak is None or self.base is None else self.peak - self.base


def smi_used():
    try:
        r = subprocess.run(["nvidia-smi", "--id=0", "--query-gpu=memory.used", "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10)
        return int(r.stdout.strip()) if r.returncode == 0 else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def timed(fn, device, runs, warmup, base):
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        sync()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        times = []
        with SmiSampler(base) as smi:
            for _ in range(runs):
                t0 = time.perf_counter()
                fn()
                sync()
                times.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.2)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else 0.0
    return {"median_ms": statistics.median(times), "times_ms": times, "peak_allocated_mib": peak, "peak_nvidia_smi_mib": smi.value()}


def init_params(model, seed, device):
    """Every parameter redrawn on the device (the golden harness' rules: matrices N(0, 1/fan_in), biases
    N(0, 0.1), norm scales 1 + N(0, 0.2), adaLN tables N(0, 0.3)); constants (rope.freqs) kept."""
    g = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for k, p in model.named_parameters():
            if k.endswith("rope.freqs"):
                continue
            leaf = k.rsplit(".", 1)[-1]
            if leaf == "scale_shift_table":
                p.normal_(0, 0.3, generator=g)
            elif k.endswith(("q_norm.weight", "k_norm.weight", "layer_norm.weight")) or leaf == "scale" or (p.ndim == 1 and "norm" in k and leaf == "weight"):
                p.normal_(1.0, 0.2, generator=g)
            elif leaf == "bias" or p.ndim == 1:
                p.normal_(0, 0.1, generator=g)
            else:
                p.normal_(0, float(p[0].numel()) ** -0.5, generator=g)


# ------------------------------------------------------------------------------------------------
# upstream modules


def open_sora(root):
    """Import path set-up shared by stdit3 and vae: the golden harness' loader and shims, then the benchmark's
    attention shims in front of them (fast SDPA instead of the harness' exact-but-slow einsum versions)."""
    sys.path.insert(0, EXTRA_HARNESS)
    import make_extra_goldens as mx  # noqa: E402  (puts harness/shims first on sys.path)

    for name in ("flash_attn", "xformers"):
        try:
            __import__(name)
            if not os.path.dirname(sys.modules[name].__file__).startswith(os.path.join(EXTRA_HARNESS, "shims")):
                continue  # a real package is installed: use it
            for k in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
                del sys.modules[k]
        except ImportError:
            pass
    sys.path.insert(0, os.path.join(HERE, "torch_shims"))
    return mx


def bench_stdit3(a, out):
    mx = open_sora(a.open_sora_root)
    mod = mx.load_upstream(a.open_sora_root, "v1.2.0", "models.stdit.stdit3")
    tiny = a.tiny
    kw = dict(hidden_size=64, depth=2, num_heads=4, caption_channels=32, model_max_length=16) if tiny else {}
    kw.update(qk_norm=True, enable_flash_attn=True, enable_layernorm_kernel=False, enable_sequence_parallelism=False)
    base = smi_used()
    torch.manual_seed(0)
    with on_device(a.device):
        model = mod.STDiT3(mod.STDiT3Config(**kw))
    model = model.to(a.device).eval()
    init_params(model, 2025, a.device)
    model = model.to(torch.bfloat16)
    B, T, H, W = 2, (3 if tiny else 15), (6 if tiny else 30), (10 if tiny else 53)
    L, C = model.config.model_max_length, model.config.caption_channels
    g = torch.Generator(device=a.device).manual_seed(7)
    inputs = {
        "x": torch.randn(B, 4, T, H, W, generator=g, device=a.device),
        "timestep": torch.tensor([800.0, 800.0], device=a.device),
        "y": 0.3 * torch.randn(B, 1, L, C, generator=g, device=a.device),
        "mask": torch.ones(B, L, dtype=torch.int64, device=a.device),
        "fps": torch.tensor([24.0, 24.0], device=a.device),
        "height": torch.tensor([H * 8.0] * B, device=a.device),
        "width": torch.tensor([426.0 if not tiny else W * 8.0] * B, device=a.device),
    }
    dt = torch.bfloat16

    def fwd():
        return model(inputs["x"].to(dt), inputs["timestep"].to(dt), inputs["y"].to(dt), mask=inputs["mask"], fps=inputs["fps"].to(dt), height=inputs["height"].to(dt), width=inputs["width"].to(dt))

    with torch.inference_mode():
        y = fwd()
        assert y.shape == (B, 8, T, H, W), y.shape
    r = timed(fwd, a.device, a.runs, a.warmup, base)
    save_safetensors(os.path.join(out, "stdit3.outputs.safetensors"), {"output": y.float()})
    save_safetensors(os.path.join(out, "stdit3.weights.safetensors"), model.state_dict())
    save_safetensors(os.path.join(out, "stdit3.inputs.safetensors"), {k: v.float() if v.is_floating_point() else v for k, v in inputs.items()})
    return {
        "name": "STDiT3-XL/2 240p 51f CFG-2" if not tiny else "STDiT3 (tiny)",
        "example": "examples/stdit3.sora",
        "config": {k: v for k, v in kw.items() if k in ("hidden_size", "depth", "num_heads", "caption_channels", "model_max_length")},
        "dtype": {"params": "bf16", "compute": "bf16"},
        "entry": "forward",
        "absent": ["x_mask"],
        "weights": "stdit3.weights.safetensors",
        "inputs": "stdit3.inputs.safetensors",
        "outputs": "stdit3.outputs.safetensors",
        "runs": a.runs,
        "warmup": a.warmup,
        "torch": r,
    }


SDXL_VAE = dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                block_out_channels=[128, 256, 512, 512], layers_per_block=2, act_fn="silu", latent_channels=4, norm_num_groups=32,
                sample_size=1024, scaling_factor=0.13025, force_upcast=True)
TINY_VAE = dict(SDXL_VAE, down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2, block_out_channels=[8, 16],
                layers_per_block=1, norm_num_groups=4)


def bench_vae(a, out):
    open_sora(a.open_sora_root)
    sys.path.insert(0, SAMPLER_HARNESS)
    import diffusers_loader  # noqa: E402
    import make_extra_goldens as mx  # noqa: E402

    mx.load_upstream(a.open_sora_root, "v1.2.0", "models.stdit.stdit3")  # package stubs (registry, ckpt utils)
    AutoencoderKL = diffusers_loader.load_autoencoder_kl(a.diffusers_root)
    cfg2d = TINY_VAE if a.tiny else SDXL_VAE

    class BenchAutoencoderKL(AutoencoderKL):
        @classmethod
        def from_pretrained(cls, *args, **kwargs):
            return AutoencoderKL(**cfg2d)

    import importlib

    dm = sys.modules["diffusers.models"]
    dm.AutoencoderKL = BenchAutoencoderKL
    dm.AutoencoderKLTemporalDecoder = type("AutoencoderKLTemporalDecoder", (diffusers_loader._Placeholder,), {})
    vae_mod = importlib.import_module("opensora.models.vae.vae")
    importlib.import_module("opensora.models.vae.vae_temporal")
    tkw = dict(in_out_channels=4, latent_embed_dim=4, embed_dim=4, filters=8, num_res_blocks=1, channel_multipliers=(1, 2, 2, 4), temporal_downsample=(False, True, True), num_groups=4)
    vt = dict(type="VAE_Temporal", **tkw) if a.tiny else dict(type="VAE_Temporal_SD", from_pretrained=None)
    base = smi_used()
    with on_device(a.device):
        vae = vae_mod.VideoAutoencoderPipeline(vae_mod.VideoAutoencoderPipelineConfig(
            vae_2d=dict(type="VideoAutoencoderKL", from_pretrained="bench", micro_batch_size=4), vae_temporal=vt, micro_frame_size=17,
            shift=(-0.10, 0.34, 0.27, 0.98), scale=(3.85, 2.32, 2.33, 3.06)))
    vae = vae.to(a.device).eval()
    init_params(vae, 2026, a.device)
    vae = vae.to(torch.bfloat16)
    nf = 51 if not a.tiny else 17
    Tz, H, W = (15, 30, 53) if not a.tiny else (5, 4, 6)
    g = torch.Generator(device=a.device).manual_seed(8)
    z = torch.randn(1, 4, Tz, H, W, generator=g, device=a.device)

    def fwd():
        return vae.decode(z.to(torch.bfloat16), num_frames=nf)

    with torch.inference_mode():
        x = fwd()
        assert x.shape[2] == nf, x.shape
    r = timed(fwd, a.device, a.runs, a.warmup, base)
    save_safetensors(os.path.join(out, "vae.outputs.safetensors"), {"x": x.float()})
    save_safetensors(os.path.join(out, "vae.weights.safetensors"), vae.state_dict())
    save_safetensors(os.path.join(out, "vae.inputs.safetensors"), {"z": z.float(), "num_frames": torch.tensor(nf, dtype=torch.int64)})
    sora_cfg = {}
    if a.tiny:
        sora_cfg = dict(vae_2d_block_out_channels=[8, 16], vae_2d_layers_per_block=1, vae_2d_norm_num_groups=4, vae_temporal_filters=8, vae_temporal_num_res_blocks=1, vae_temporal_num_groups=4)
    return {
        "name": "VAE 1.2 decode 51f 240p" if not a.tiny else "VAE 1.2 decode (tiny)",
        "example": "examples/vae_pipeline_v12.sora",
        "config": sora_cfg,
        "dtype": {"params": "bf16", "compute": "bf16"},
        "entry": "decode",
        "weights": "vae.weights.safetensors",
        "inputs": "vae.inputs.safetensors",
        "outputs": "vae.outputs.safetensors",
        "microBatch": {"axis": "Tz", "size": 5},
        "runs": a.runs,
        "warmup": a.warmup,
        "torch": r,
    }


def bench_t5(a, out):
    try:
        from transformers import T5Config, T5EncoderModel
    except ImportError as e:
        raise SystemExit(f"t5: transformers' T5EncoderModel is not importable here ({e}); the GPU machine has transformers")

    kw = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64, feed_forward_proj="gated-gelu", relative_attention_num_buckets=32, relative_attention_max_distance=128, layer_norm_epsilon=1e-6)
    if a.tiny:
        kw.update(vocab_size=64, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4)
    base = smi_used()
    torch.manual_seed(0)
    with on_device(a.device):
        model = T5EncoderModel(T5Config(**kw, is_encoder_decoder=False, use_cache=False, dropout_rate=0.0))
    model = model.to(a.device).eval()
    init_params(model, 2027, a.device)
    model = model.to(torch.bfloat16)
    L = 300 if not a.tiny else 12
    g = torch.Generator(device=a.device).manual_seed(9)
    ids = torch.randint(2, kw["vocab_size"], (1, L), generator=g, device=a.device)
    am = torch.ones(1, L, dtype=torch.int64, device=a.device)

    def fwd():
        return model(input_ids=ids, attention_mask=am).last_hidden_state

    with torch.inference_mode():
        h = fwd()
    r = timed(fwd, a.device, a.runs, a.warmup, base)
    save_safetensors(os.path.join(out, "t5.outputs.safetensors"), {"output": h.float()})
    # tied embeddings share storage: one copy per key
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    save_safetensors(os.path.join(out, "t5.weights.safetensors"), sd)
    save_safetensors(os.path.join(out, "t5.inputs.safetensors"), {"input_ids": ids, "attention_mask": am})
    return {
        "name": "T5-XXL encoder 300 tokens" if not a.tiny else "T5 encoder (tiny)",
        "example": "examples/t5.sora",
        "config": {k: v for k, v in kw.items() if k in ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads")},
        "dtype": {"params": "bf16", "compute": "bf16"},
        "entry": "forward",
        "weights": "t5.weights.safetensors",
        "inputs": "t5.inputs.safetensors",
        "outputs": "t5.outputs.safetensors",
        "runs": a.runs,
        "warmup": a.warmup,
        "torch": r,
    }


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def on_device(device):
    """Build modules directly on the GPU (torch >= 2.0): initialising billions of parameters on the CPU takes minutes."""
    return torch.device(device) if device == "cuda" and hasattr(torch.device(device), "__enter__") else _null()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, choices=["stdit3", "vae", "t5"])
    p.add_argument("--out", required=True)
    p.add_argument("--open-sora-root", default=os.environ.get("OPEN_SORA_ROOT"))
    p.add_argument("--diffusers-root", default=os.environ.get("DIFFUSERS_ROOT"))
    p.add_argument("--device", default="cuda")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--tiny", action="store_true")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    if a.model in ("stdit3", "vae") and not a.open_sora_root:
        raise SystemExit("set OPEN_SORA_ROOT (holding os-v1.2.0/opensora) or --open-sora-root")
    if a.model == "vae" and not a.diffusers_root:
        raise SystemExit("set DIFFUSERS_ROOT (holding src/diffusers of v0.27.2) or --diffusers-root")
    if a.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # bf16 runs; keep f32 paths exact like sorac's NVIDIA_TF32_OVERRIDE=0
    item = {"stdit3": bench_stdit3, "vae": bench_vae, "t5": bench_t5}[a.model](a, a.out)
    gpu = torch.cuda.get_device_name(0) if a.device == "cuda" else "cpu"
    add_to_manifest(a.out, item, gpu)
    t = item["torch"]
    print(f"{item['name']}: torch {a.device} median {t['median_ms']:.1f} ms over {a.runs} runs; peak allocated {t['peak_allocated_mib']:.0f} MiB, nvidia-smi +{t['peak_nvidia_smi_mib']} MiB")


if __name__ == "__main__":
    main()
