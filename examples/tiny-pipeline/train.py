#!/usr/bin/python3
"""Train the tiny text-to-video pipeline in examples/tiny-pipeline/ (deterministic, CPU, one thread).

Why this exists: `sorac generate` needs a pipeline that runs in seconds on a CPU and whose output
visibly follows the prompt. Random weights only produce noise, so this script trains one, once, on
synthetic clips (a coloured shape moving over a plain background) whose prompts come from a small
grammar. Every component has the architecture and checkpoint layout of the real Open-Sora 1.x stack,
at toy size:

  tokenizer/     SentencePiece unigram model with T5 conventions (pad 0, eos 1, unk 2, no bos)
  text_encoder/  HF T5 v1.1 encoder (T5EncoderModel keys), FROZEN seeded random weights (Open-Sora
                 never trains T5)
  vae/           diffusers AutoencoderKL (4 blocks = 8x spatial), trained here on the frames, used per
                 frame with the 0.18215 latent scaling of Open-Sora 1.0/1.1's VideoAutoencoderKL
  transformer/   Open-Sora 1.2 STDiT3, the REAL upstream module (opensora/models/stdit/stdit3.py @
                 v1.2.0), trained with the upstream RFlowScheduler.training_losses, caption dropout on

Upstream code is NOT part of this repository. Export Open-Sora v1.2.0 once:

    git -C <Open-Sora clone> archive v1.2.0 opensora | tar -x -C $OPEN_SORA_ROOT/os-v1.2.0

and run (Debian's python3 with torch 1.13, numpy, sentencepiece, PIL):

    OPEN_SORA_ROOT=/tmp nice -n 10 /usr/bin/python3 examples/tiny-pipeline/train.py [--quick]

Upstream modules are imported the way tests/fixtures/golden-extra/harness/make_extra_goldens.py
imports them (its load_upstream, with its shims for einops/timm/rotary_embedding_torch/transformers/
mmengine/xformers/flash_attn), reused by path. Two more things are shimmed here: `tqdm` (imported by
opensora/schedulers/rf/__init__.py; the sampler runs with progress=False) and `Tensor.cuda()` (called
by CaptionEmbedder.token_drop in training; an identity on this CPU-only torch).

Outputs (default --out: this directory): the four component directories (config.json +
model.safetensors, tokenizer/spiece.model), samples/ (PNG strips + GIFs from the upstream RFLOW
sampler), sampling.json (sampler settings) and the test fixtures in tests/demo/fixtures/ (inputs and
the PyTorch outputs recorded from the exported weights). `--quick` is a smoke run (tiny step counts,
written to --out, which then must not be this directory).
"""
import argparse
import importlib
import importlib.util
import json
import math
import os
import struct
import sys
import time
import types
from pathlib import Path

# one CPU thread for everything, BLAS included (set before numpy/torch load their thread pools)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
HARNESS = REPO / "tests" / "fixtures" / "golden-extra" / "harness"
FIXTURES = REPO / "tests" / "demo" / "fixtures"

# ---------------------------------------------------------------------------------------------
# settings
# ---------------------------------------------------------------------------------------------

SIZE = 32  # frame height = width (pixels)
FRAMES = 8  # frames per clip
FPS = 8  # the fps the transformer is conditioned on (and the GIF/mp4 rate)
TOKENS = 16  # T5 token length (model_max_length): prompt pieces + eos, padded with 0
SCALING = 0.18215  # Open-Sora 1.0/1.1 VideoAutoencoderKL latent scaling

T5_CONFIG = dict(
    architectures=["T5EncoderModel"], model_type="t5", vocab_size=64, d_model=32, d_kv=8, d_ff=64, num_layers=2,
    num_decoder_layers=2, num_heads=4, relative_attention_num_buckets=32, relative_attention_max_distance=128,
    dropout_rate=0.1, layer_norm_epsilon=1e-6, initializer_factor=1.0, feed_forward_proj="gated-gelu",
    is_encoder_decoder=True, use_cache=True, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    tie_word_embeddings=False)

VAE_CONFIG = dict(
    _class_name="AutoencoderKL", in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[16, 32, 48, 48], layers_per_block=1, act_fn="silu",
    latent_channels=4, norm_num_groups=8, sample_size=SIZE, scaling_factor=SCALING, force_upcast=True)

STDIT3_CONFIG = dict(
    architectures=["STDiT3"], model_type="STDiT3", input_size=[None, None, None], input_sq_size=512, in_channels=4,
    patch_size=[1, 2, 2], hidden_size=128, depth=2, num_heads=4, mlp_ratio=4.0, class_dropout_prob=0.1, pred_sigma=True,
    drop_path=0.0, caption_channels=T5_CONFIG["d_model"], model_max_length=TOKENS, qk_norm=True, enable_flash_attn=False,
    enable_layernorm_kernel=False, enable_sequence_parallelism=False, only_train_temporal=False, freeze_y_embedder=False,
    skip_y_embedder=False)

FULL = dict(vae_steps=4000, vae_batch=16, vae_lr=2e-3, kl_weight=1e-4, fg_weight=4.0, clips=6000, dit_steps=5000, dit_batch=32,
            dit_lr=1e-3, t_sampling="uniform", ema=0.999, warmup=200)
QUICK = dict(vae_steps=20, vae_batch=8, vae_lr=2e-3, kl_weight=1e-4, fg_weight=4.0, clips=32, dit_steps=20, dit_batch=4,
             dit_lr=1e-3, t_sampling="uniform", ema=0.9, warmup=5)

SAMPLE_STEPS = 30
SAMPLE_CFG = 5.0
SAMPLE_PROMPTS = [
    "a red ball moving right",
    "a blue square moving up on a white background",
    "a yellow triangle bouncing on a gray background",
    "a green ball growing",
    "a white box moving left",
    "a purple triangle shrinking on a white background",
]
SEEDS = dict(t5=1, vae=2, vae_data=3, clips=4, dit=5, dit_init=6, sample=7, fixtures=8)

# ---------------------------------------------------------------------------------------------
# prompt grammar and synthetic clips
# ---------------------------------------------------------------------------------------------

COLOURS = {
    "red": (225, 35, 35), "green": (35, 185, 60), "blue": (40, 90, 240),
    "yellow": (245, 215, 30), "white": (245, 245, 245), "purple": (165, 55, 220),
}
SHAPE_WORDS = {"ball": "circle", "circle": "circle", "square": "square", "box": "square", "triangle": "triangle"}
SHAPES = ["circle", "square", "triangle"]
MOTIONS = ["moving left", "moving right", "moving up", "moving down", "bouncing", "growing", "shrinking", "standing still"]
BACKGROUNDS = {"black": (0, 0, 0), "gray": (110, 110, 110), "white": (250, 250, 250)}


def prompt_text(colour, shape_word, motion, bg, say_bg):
    p = f"a {colour} {shape_word} {motion}"
    return p + f" on a {bg} background" if say_bg else p


def all_prompts():
    """Every sentence of the grammar (the tokenizer corpus and the set of training prompts)."""
    out = []
    for c in COLOURS:
        for s in SHAPE_WORDS:
            for m in MOTIONS:
                for bg in BACKGROUNDS:
                    if bg == c:
                        continue
                    if bg == "black":
                        out.append(prompt_text(c, s, m, bg, False))
                    out.append(prompt_text(c, s, m, bg, True))
    return out


def draw_clip_spec(rng):
    """One clip: attributes, prompt and per-frame geometry (centres [T, 2], radii [T])."""
    colour = str(rng.choice(list(COLOURS)))
    shape_word = str(rng.choice(list(SHAPE_WORDS)))
    motion = str(rng.choice(MOTIONS))
    bg = str(rng.choice([b for b in BACKGROUNDS if b != colour]))
    say_bg = bg != "black" or bool(rng.random() < 0.5)
    centres, radii = geometry(rng, motion)
    return dict(colour=colour, shape=SHAPE_WORDS[shape_word], motion=motion, bg=bg,
                prompt=prompt_text(colour, shape_word, motion, bg, say_bg), centres=centres, radii=radii)


def geometry(rng, motion):
    S, T = SIZE, FRAMES
    u = np.linspace(0.0, 1.0, T)
    r = rng.uniform(0.14 * S, 0.19 * S)
    ext = 1.3 * r + 1.0  # farthest extent of any shape (triangle vertex) plus a pixel
    lo, hi = ext, S - ext
    if motion in ("growing", "shrinking"):
        r0, r1 = 0.08 * S, 0.30 * S
        e1 = 1.3 * r1 + 1.0
        c = rng.uniform(e1, S - e1, size=2)
        radii = r0 + (r1 - r0) * u if motion == "growing" else r1 - (r1 - r0) * u
        return np.repeat(c[None], T, 0), radii
    radii = np.full(T, r)
    if motion == "standing still":
        return np.repeat(rng.uniform(lo, hi, size=2)[None], T, 0), radii
    if motion == "bouncing":
        x = rng.uniform(lo, hi)
        amp = rng.uniform(0.35 * S, hi - lo)
        phase = rng.uniform(0.0, math.pi)
        hops = max(1, T // 8)  # one bounce per 8 frames
        y = hi - amp * np.abs(np.sin(hops * math.pi * u + phase))
        return np.stack([np.full(T, x), y], 1), radii
    dist = rng.uniform(0.40 * S, min(0.50 * S, hi - lo))
    start = rng.uniform(lo, hi - dist)
    other = rng.uniform(lo, hi)
    along = start + dist * u  # increasing coordinate
    if motion in ("moving left", "moving up"):
        along = along[::-1]
    if motion in ("moving left", "moving right"):
        return np.stack([along, np.full(T, other)], 1), radii
    return np.stack([np.full(T, other), along], 1), radii  # image y grows downwards: "up" = decreasing y


def render(centres, radii, shapes, colours, bgs, coverage=False):
    """Anti-aliased frames [N, 3, S, S] in [-1, 1] from per-frame geometry (numpy, vectorised);
    with coverage=True also the shape's pixel coverage [N, 1, S, S]."""
    S = SIZE
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float64) + 0.5
    dx = xx[None] - centres[:, 0, None, None]
    dy = yy[None] - centres[:, 1, None, None]
    r = radii[:, None, None]
    circle = np.sqrt(dx * dx + dy * dy) - r
    square = np.maximum(np.abs(dx), np.abs(dy)) - 0.886 * r  # same area as the circle
    R = 1.3 * r  # equilateral triangle, apex up, circumradius R, centroid at the centre
    tri = np.full_like(circle, -np.inf)
    for a in (90.0, 210.0, 330.0):  # outward edge normals (image y down)
        n = (math.cos(math.radians(a)), math.sin(math.radians(a)))
        tri = np.maximum(tri, n[0] * dx + n[1] * dy - 0.5 * R)
    kind = np.array([SHAPES.index(s) for s in shapes])[:, None, None]
    sdf = np.where(kind == 0, circle, np.where(kind == 1, square, tri))
    cov = np.clip(0.5 - sdf, 0.0, 1.0)[:, None]
    col = np.array([COLOURS[c] for c in colours], dtype=np.float64)[:, :, None, None] / 127.5 - 1.0
    bg = np.array([BACKGROUNDS[b] for b in bgs], dtype=np.float64)[:, :, None, None] / 127.5 - 1.0
    frames = (bg * (1.0 - cov) + col * cov).astype(np.float32)
    return (frames, cov.astype(np.float32)) if coverage else frames


def render_clip(spec):
    """[3, T, S, S] in [-1, 1]."""
    T = len(spec["radii"])
    f = render(spec["centres"], spec["radii"], [spec["shape"]] * T, [spec["colour"]] * T, [spec["bg"]] * T)
    return f.transpose(1, 0, 2, 3)


def random_frames(rng, n, coverage=False):
    """n frames drawn like the clips' frames (random clip, random frame): VAE training data."""
    specs = [draw_clip_spec(rng) for _ in range(n)]
    k = rng.integers(0, FRAMES, size=n)
    return render(np.stack([s["centres"][i] for s, i in zip(specs, k)]), np.array([s["radii"][i] for s, i in zip(specs, k)]),
                  [s["shape"] for s in specs], [s["colour"] for s in specs], [s["bg"] for s in specs], coverage=coverage)


def write_json(path, obj):
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# 1. tokenizer
# ---------------------------------------------------------------------------------------------


def train_tokenizer(out_dir, prompts):
    import sentencepiece as spm

    import io

    out_dir.mkdir(parents=True, exist_ok=True)
    # every grammar sentence; the grammar words, one per line and all on one line (the unigram trainer
    # seeds only substrings followed by more than one distinct character, so a word always followed by
    # a space, or always last, would never become a piece); the alphabet, so that words outside the
    # grammar split into letters instead of becoming <unk>
    words = sorted({w for p in prompts for w in p.split()})
    corpus = prompts + words + [" ".join(words), " ".join("abcdefghijklmnopqrstuvwxyz")]
    model = io.BytesIO()  # in memory: a file input / model_prefix would be recorded in the model's trainer_spec
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=model, model_type="unigram", vocab_size=T5_CONFIG["vocab_size"],
        hard_vocab_limit=False, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>",
        unk_piece="<unk>", normalization_rule_name="nmt_nfkc", character_coverage=1.0, num_threads=1,
        shuffle_input_sentence=False, seed_sentencepiece_size=10000, minloglevel=2)
    tmp = out_dir / "spiece.model.tmp"
    tmp.write_bytes(model.getvalue())
    os.replace(tmp, out_dir / "spiece.model")
    sp = spm.SentencePieceProcessor(model_file=str(out_dir / "spiece.model"))
    assert sp.pad_id() == 0 and sp.eos_id() == 1 and sp.unk_id() == 2 and sp.bos_id() == -1
    assert sp.get_piece_size() <= T5_CONFIG["vocab_size"], sp.get_piece_size()
    write_json(out_dir / "tokenizer_config.json", dict(
        tokenizer_class="T5Tokenizer", model_max_length=TOKENS, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
        extra_ids=0, additional_special_tokens=[], legacy=True))
    return sp


def tokenize(sp, prompts, L=TOKENS):
    """T5Tokenizer(padding="max_length", truncation=True, max_length=L, add_special_tokens=True)."""
    ids = torch.zeros(len(prompts), L, dtype=torch.int64)
    mask = torch.zeros(len(prompts), L, dtype=torch.int64)
    for i, p in enumerate(prompts):
        t = sp.encode(p)[: L - 1] + [sp.eos_id()]
        ids[i, : len(t)] = torch.tensor(t)
        mask[i, : len(t)] = 1
    return ids, mask


# ---------------------------------------------------------------------------------------------
# 2. T5 v1.1 encoder (HF T5EncoderModel semantics and keys; formats.md section 2.3)
# ---------------------------------------------------------------------------------------------


class T5RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        var = x.float().pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def relative_position_bucket(rel, num_buckets, max_distance):
    """T5Attention._relative_position_bucket, bidirectional."""
    nb = num_buckets // 2
    buckets = (rel > 0).to(torch.long) * nb
    rel = torch.abs(rel)
    max_exact = nb // 2
    is_small = rel < max_exact
    large = max_exact + (torch.log(torch.clamp(rel, min=1).float() / max_exact) / math.log(max_distance / max_exact) * (nb - max_exact)).to(torch.long)
    large = torch.min(large, torch.full_like(large, nb - 1))
    return buckets + torch.where(is_small, rel, large)


class T5Attention(nn.Module):
    def __init__(self, c, has_bias):
        super().__init__()
        self.h, self.dkv, inner = c["num_heads"], c["d_kv"], c["num_heads"] * c["d_kv"]
        self.q = nn.Linear(c["d_model"], inner, bias=False)
        self.k = nn.Linear(c["d_model"], inner, bias=False)
        self.v = nn.Linear(c["d_model"], inner, bias=False)
        self.o = nn.Linear(inner, c["d_model"], bias=False)
        self.nb, self.md = c["relative_attention_num_buckets"], c["relative_attention_max_distance"]
        if has_bias:
            self.relative_attention_bias = nn.Embedding(self.nb, self.h)

    def compute_bias(self, L):
        rel = torch.arange(L)[None, :] - torch.arange(L)[:, None]
        return self.relative_attention_bias(relative_position_bucket(rel, self.nb, self.md)).permute(2, 0, 1)[None]

    def forward(self, x, position_bias):
        B, L, _ = x.shape
        sh = lambda t: t.view(B, L, self.h, self.dkv).transpose(1, 2)  # noqa: E731
        scores = sh(self.q(x)) @ sh(self.k(x)).transpose(-1, -2) + position_bias  # no 1/sqrt(d_kv)
        a = torch.softmax(scores.float(), -1).type_as(scores) @ sh(self.v(x))
        return self.o(a.transpose(1, 2).reshape(B, L, self.h * self.dkv))


class T5LayerSelfAttention(nn.Module):
    def __init__(self, c, has_bias):
        super().__init__()
        self.SelfAttention = T5Attention(c, has_bias)
        self.layer_norm = T5RMSNorm(c["d_model"], c["layer_norm_epsilon"])


class T5DenseGatedActDense(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.wi_0 = nn.Linear(c["d_model"], c["d_ff"], bias=False)
        self.wi_1 = nn.Linear(c["d_model"], c["d_ff"], bias=False)
        self.wo = nn.Linear(c["d_ff"], c["d_model"], bias=False)

    def forward(self, x):
        return self.wo(gelu_new(self.wi_0(x)) * self.wi_1(x))


class T5LayerFF(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.DenseReluDense = T5DenseGatedActDense(c)
        self.layer_norm = T5RMSNorm(c["d_model"], c["layer_norm_epsilon"])


class T5Block(nn.Module):
    def __init__(self, c, has_bias):
        super().__init__()
        self.layer = nn.ModuleList([T5LayerSelfAttention(c, has_bias), T5LayerFF(c)])

    def forward(self, h, position_bias):
        sa, ff = self.layer
        h = h + sa.SelfAttention(sa.layer_norm(h), position_bias)
        return h + ff.DenseReluDense(ff.layer_norm(h))


class T5Encoder(nn.Module):
    """T5EncoderModel(config)(input_ids, attention_mask).last_hidden_state; state_dict keys as HF."""

    def __init__(self, c):
        super().__init__()
        assert c["feed_forward_proj"] == "gated-gelu"
        self.shared = nn.Embedding(c["vocab_size"], c["d_model"])
        self.encoder = nn.Module()
        self.encoder.block = nn.ModuleList([T5Block(c, i == 0) for i in range(c["num_layers"])])
        self.encoder.final_layer_norm = T5RMSNorm(c["d_model"], c["layer_norm_epsilon"])

    def forward(self, input_ids, attention_mask):
        h = self.shared(input_ids)
        bias = self.encoder.block[0].layer[0].SelfAttention.compute_bias(input_ids.shape[1])
        bias = bias + (1.0 - attention_mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
        for blk in self.encoder.block:
            h = blk(h, bias)
        return self.encoder.final_layer_norm(h)

    def init_hf(self, c, g):
        """T5PreTrainedModel._init_weights (factor = initializer_factor), drawn from a seeded generator."""
        f, d, dkv, H, dff = c["initializer_factor"], c["d_model"], c["d_kv"], c["num_heads"], c["d_ff"]
        per_leaf = {
            "q": f * (d * dkv) ** -0.5, "k": f * d**-0.5, "v": f * d**-0.5, "o": f * (H * dkv) ** -0.5,
            "relative_attention_bias": f * d**-0.5, "wi_0": f * d**-0.5, "wi_1": f * d**-0.5, "wo": f * dff**-0.5,
        }
        std = {"shared.weight": f * 1.0}
        for k in self.state_dict():
            if k != "shared.weight" and not k.endswith("layer_norm.weight"):
                std[k] = per_leaf[k.split(".")[-2]]
        with torch.no_grad():
            for k, p in self.state_dict(keep_vars=True).items():
                if k in std:
                    p.copy_(std[k] * torch.randn(p.shape, generator=g))
                else:
                    p.fill_(1.0)


def export_t5_state(model):
    # save_pretrained(safe_serialization=True) keeps the tied embedding once, as shared.weight
    return {k: v for k, v in model.state_dict().items() if k != "encoder.embed_tokens.weight"}


# ---------------------------------------------------------------------------------------------
# 3. diffusers AutoencoderKL (keys and math of diffusers 0.27.2 = examples/sd_vae.sora)
# ---------------------------------------------------------------------------------------------


class ResnetBlock2D(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=1e-6)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, cout, eps=1e-6)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))
        return (x if self.conv_shortcut is None else self.conv_shortcut(x)) + h


class AttnBlock(nn.Module):
    """Attention(_from_deprecated_attn_block=True), one head of dim C over the H*W tokens, residual."""

    def __init__(self, c, groups):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, c, eps=1e-6)
        self.to_q, self.to_k, self.to_v = nn.Linear(c, c), nn.Linear(c, c), nn.Linear(c, c)
        self.to_out = nn.ModuleList([nn.Linear(c, c)])

    def forward(self, x):
        N, C, H, W = x.shape
        h = self.group_norm(x).view(N, C, H * W).transpose(1, 2)
        q, k, v = self.to_q(h), self.to_k(h), self.to_v(h)
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(C), -1) @ v
        return self.to_out[0](a).transpose(1, 2).reshape(N, C, H, W) + x


class MidBlock2D(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(c, c, groups), ResnetBlock2D(c, c, groups)])
        self.attentions = nn.ModuleList([AttnBlock(c, groups)])

    def forward(self, x):
        return self.resnets[1](self.attentions[0](self.resnets[0](x)))


class Downsample2D(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample2D(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class CoderBlock(nn.Module):
    """DownEncoderBlock2D / UpDecoderBlock2D: resnets, then an optional resampler."""

    def __init__(self, cin, cout, n, groups, resample, name):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(cin if i == 0 else cout, cout, groups) for i in range(n)])
        if resample is not None:
            setattr(self, name, nn.ModuleList([resample(cout)]))
        self.name = name if resample is not None else None

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        return getattr(self, self.name)[0](x) if self.name else x


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        boc, n, g = c["block_out_channels"], len(c["block_out_channels"]), c["norm_num_groups"]
        self.conv_in = nn.Conv2d(c["in_channels"], boc[0], 3, padding=1)
        self.down_blocks = nn.ModuleList([
            CoderBlock(boc[max(i - 1, 0)], boc[i], c["layers_per_block"], g, Downsample2D if i < n - 1 else None, "downsamplers")
            for i in range(n)])
        self.mid_block = MidBlock2D(boc[-1], g)
        self.conv_norm_out = nn.GroupNorm(g, boc[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(boc[-1], 2 * c["latent_channels"], 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        for b in self.down_blocks:
            h = b(h)
        return self.conv_out(F.silu(self.conv_norm_out(self.mid_block(h))))


class Decoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        boc, n, g = c["block_out_channels"], len(c["block_out_channels"]), c["norm_num_groups"]
        self.conv_in = nn.Conv2d(c["latent_channels"], boc[-1], 3, padding=1)
        self.mid_block = MidBlock2D(boc[-1], g)
        self.up_blocks = nn.ModuleList([
            CoderBlock(boc[-1] if i == 0 else boc[n - i], boc[n - 1 - i], c["layers_per_block"] + 1, g,
                       Upsample2D if i < n - 1 else None, "upsamplers")
            for i in range(n)])
        self.conv_norm_out = nn.GroupNorm(g, boc[0], eps=1e-6)
        self.conv_out = nn.Conv2d(boc[0], c["out_channels"], 3, padding=1)

    def forward(self, z):
        h = self.mid_block(self.conv_in(z))
        for b in self.up_blocks:
            h = b(h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


class AutoencoderKL(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.encoder, self.decoder = Encoder(c), Decoder(c)
        zc = c["latent_channels"]
        self.quant_conv = nn.Conv2d(2 * zc, 2 * zc, 1)
        self.post_quant_conv = nn.Conv2d(zc, zc, 1)

    def moments(self, x):
        mean, logvar = self.quant_conv(self.encoder(x)).chunk(2, 1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))

    # Open-Sora VideoAutoencoderKL per frame, posterior mode (= sorac's encode_video / decode_video)
    def encode_video(self, x):
        B, C, T, H, W = x.shape
        mean, _ = self.moments(x.permute(0, 2, 1, 3, 4).reshape(B * T, C, H, W))
        return (mean * SCALING).view(B, T, *mean.shape[1:]).permute(0, 2, 1, 3, 4)

    def decode_video(self, z):
        B, C, T, h, w = z.shape
        y = self.decode(z.permute(0, 2, 1, 3, 4).reshape(B * T, C, h, w) / SCALING)
        return y.view(B, T, *y.shape[1:]).permute(0, 2, 1, 3, 4)

    @torch.no_grad()
    def fold_latent_normalisation(self, mu, sigma):
        """Reparametrise so that SCALING * mean' = (mean - mu) / sigma per channel: the same autoencoder
        (quant_conv / post_quant_conv absorb the affine map), latents of unit scale for the diffusion model."""
        zc = mu.numel()
        a = 1.0 / (sigma * SCALING)
        qw, qb = self.quant_conv.weight, self.quant_conv.bias
        qw[:zc] *= a[:, None, None, None]
        qb[:zc] = a * (qb[:zc] - mu)
        qb[zc:] += 2.0 * torch.log(a)
        pw, pb = self.post_quant_conv.weight, self.post_quant_conv.bias
        pb += (pw[:, :, 0, 0] @ mu)
        pw /= a[None, :, None, None]


# ---------------------------------------------------------------------------------------------
# upstream Open-Sora v1.2.0 (STDiT3, RFlowScheduler, RFLOW)
# ---------------------------------------------------------------------------------------------


def load_harness():
    spec = importlib.util.spec_from_file_location("make_extra_goldens", HARNESS / "make_extra_goldens.py")
    h = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(h)  # puts harness/shims on sys.path, sets torch to 1 thread
    return h


def load_opensora(h, root):
    stdit3 = h.load_upstream(root, "v1.2.0", "models.stdit.stdit3")
    rf = importlib.import_module("opensora.schedulers.rf.rectified_flow")
    # opensora/schedulers/rf/__init__.py (RFLOW) runs as the package itself; it imports tqdm
    tq = types.ModuleType("tqdm")
    tq.tqdm = lambda it, **kw: it
    sys.modules.setdefault("tqdm", tq)
    d = Path(root) / "os-v1.2.0" / "opensora" / "schedulers" / "rf"
    spec = importlib.util.spec_from_file_location("opensora.schedulers.rf", d / "__init__.py", submodule_search_locations=[str(d)])
    pkg = importlib.util.module_from_spec(spec)
    sys.modules["opensora.schedulers.rf"] = pkg
    spec.loader.exec_module(pkg)
    if not torch.cuda.is_available():
        # CaptionEmbedder.token_drop (caption dropout in training) calls torch.rand(B).cuda()
        torch.Tensor.cuda = lambda self, *a, **k: self
    return stdit3, rf, pkg


def stdit3_kwargs():
    keep = ("input_size", "input_sq_size", "in_channels", "patch_size", "hidden_size", "depth", "num_heads", "mlp_ratio",
            "class_dropout_prob", "pred_sigma", "drop_path", "caption_channels", "model_max_length", "qk_norm",
            "enable_flash_attn", "enable_layernorm_kernel", "enable_sequence_parallelism", "only_train_temporal",
            "freeze_y_embedder", "skip_y_embedder")
    kw = {k: STDIT3_CONFIG[k] for k in keep}
    kw["input_size"] = tuple(kw["input_size"])
    kw["patch_size"] = tuple(kw["patch_size"])
    return kw


class FrozenT5:
    """The text_encoder interface RFLOW.sample uses (opensora/models/text_encoder/t5.py@v1.2.0 T5Encoder):
    encode(prompts) -> {y: [n, 1, L, C], mask: [n, L]}; null(n) = the DiT's y_embedder.y_embedding repeated."""

    def __init__(self, sp, t5, dit):
        self.sp, self.t5, self.dit = sp, t5, dit

    def encode(self, prompts):
        ids, mask = tokenize(self.sp, prompts)
        with torch.no_grad():
            y = self.t5(ids, mask)
        return dict(y=y[:, None], mask=mask)

    def null(self, n):
        return self.dit.y_embedder.y_embedding[None].repeat(n, 1, 1)[:, None]


def size_args(n):
    return dict(fps=torch.full((n,), float(FPS)), height=torch.full((n,), float(SIZE)), width=torch.full((n,), float(SIZE)))


def sampler(pkg, steps, cfg):
    return pkg.RFLOW(num_sampling_steps=steps, cfg_scale=cfg, use_timestep_transform=False)


# ---------------------------------------------------------------------------------------------
# training stages
# ---------------------------------------------------------------------------------------------


class Clock:
    """Wall and CPU seconds since creation (the machine may be shared: CPU time is the cost of the run)."""

    def __init__(self):
        self.wall, self.cpu = time.time(), time.process_time()

    def __str__(self):
        return f"{time.time() - self.wall:.0f}s wall, {time.process_time() - self.cpu:.0f}s cpu"


def lr_at(step, total, base, warmup):
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return base * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * p)))


def train_vae(P, log):
    torch.manual_seed(SEEDS["vae"])
    vae = AutoencoderKL(VAE_CONFIG)
    rng = np.random.default_rng(SEEDS["vae_data"])
    opt = torch.optim.Adam(vae.parameters(), lr=P["vae_lr"])
    t0, run = Clock(), None
    for step in range(P["vae_steps"]):
        for grp in opt.param_groups:
            grp["lr"] = lr_at(step, P["vae_steps"], P["vae_lr"], P["warmup"])
        x, cov = map(torch.from_numpy, random_frames(rng, P["vae_batch"], coverage=True))
        w = 1.0 + P["fg_weight"] * cov  # the shape covers ~8% of the pixels: weight it up
        mean, logvar = vae.moments(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)  # posterior sample
        rec = vae.decode(z)
        l1 = (w * (rec - x).abs()).mean()
        mse = (w * (rec - x).pow(2)).mean()
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
        loss = l1 + mse + P["kl_weight"] * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        cur = torch.tensor([loss.item(), l1.item(), mse.item(), kl.item()])
        run = cur if run is None else 0.98 * run + 0.02 * cur
        if step % 100 == 0 or step == P["vae_steps"] - 1:
            log(f"vae step {step:5d}  loss {run[0]:.4f}  l1 {run[1]:.4f}  mse {run[2]:.5f}  kl {run[3]:.2f}  ({t0})")
    vae.eval()
    # latent statistics (posterior means) over fresh frames, folded into quant_conv / post_quant_conv
    with torch.no_grad():
        m = torch.cat([vae.moments(torch.from_numpy(random_frames(rng, 64)))[0] for _ in range(16)])
        mu, sigma = m.mean((0, 2, 3)), m.std((0, 2, 3))
        x = torch.from_numpy(random_frames(rng, 64))
        before = vae.decode(vae.moments(x)[0])
        vae.fold_latent_normalisation(mu, sigma)
        mean_after = vae.moments(x)[0]
        after = vae.decode(mean_after)
        s = mean_after * SCALING
        log(f"vae latents: raw mean {mu.numpy().round(3).tolist()} std {sigma.numpy().round(3).tolist()}; after folding, "
            f"scaled latents mean {s.mean().item():.3f} std {s.std().item():.3f}; decode change {(after - before).abs().max().item():.2e}")
        log(f"vae eval (posterior mode) l1 {(after - x).abs().mean().item():.4f} mse {(after - x).pow(2).mean().item():.5f}")
    return vae, str(t0)


def make_dataset(P, vae, t5, sp, log):
    rng = np.random.default_rng(SEEDS["clips"])
    specs = [draw_clip_spec(rng) for _ in range(P["clips"])]
    prompts = sorted({s["prompt"] for s in specs})
    index = {p: i for i, p in enumerate(prompts)}
    ids, mask = tokenize(sp, prompts)
    with torch.no_grad():
        emb = t5(ids, mask)
        lat = []
        for i in range(0, len(specs), 32):
            x = torch.from_numpy(np.stack([render_clip(s) for s in specs[i:i + 32]]))
            lat.append(vae.encode_video(x))
        lat = torch.cat(lat)
    log(f"dataset: {len(specs)} clips, {len(prompts)} distinct prompts, latents {list(lat.shape)} "
        f"(mean {lat.mean().item():.3f}, std {lat.std().item():.3f})")
    return dict(latents=lat, emb=emb, mask=mask, prompt_of=torch.tensor([index[s["prompt"]] for s in specs]))


def train_dit(P, stdit3, rf, data, log):
    torch.manual_seed(SEEDS["dit_init"])
    model = stdit3.STDiT3(stdit3.STDiT3Config(**stdit3_kwargs()))
    ema = stdit3.STDiT3(stdit3.STDiT3Config(**stdit3_kwargs()))
    ema.load_state_dict(model.state_dict())
    ema.eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=P["dit_lr"], weight_decay=0.0)
    # RFlowScheduler as Open-Sora 1.2 trains with it, minus the timestep transform (num_frames // 17 * 5
    # is 0 for short clips); t uniform (the scheduler's default; the released configs use logit-normal,
    # which starves the high-noise end where a clip's colour and layout are decided)
    scheduler = rf.RFlowScheduler(num_timesteps=1000, sample_method=P["t_sampling"], use_timestep_transform=False)
    g = torch.Generator().manual_seed(SEEDS["dit"])
    torch.manual_seed(SEEDS["dit"])  # t, noise and caption dropout draw from the global generator
    model.train()
    B, N = P["dit_batch"], data["latents"].shape[0]
    t0, run = Clock(), None
    for step in range(P["dit_steps"]):
        for grp in opt.param_groups:
            grp["lr"] = lr_at(step, P["dit_steps"], P["dit_lr"], P["warmup"])
        idx = torch.randint(0, N, (B,), generator=g)
        pid = data["prompt_of"][idx]
        kwargs = dict(y=data["emb"][pid][:, None], mask=data["mask"][pid], **size_args(B))
        loss = scheduler.training_losses(model, data["latents"][idx], model_kwargs=kwargs)["loss"].mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.mul_(P["ema"]).add_(pm.detach(), alpha=1.0 - P["ema"])
        run = loss.item() if run is None else 0.98 * run + 0.02 * loss.item()
        if step % 100 == 0 or step == P["dit_steps"] - 1:
            log(f"dit step {step:5d}  loss {run:.4f}  lr {opt.param_groups[0]['lr']:.2e}  ({t0})")
    return ema, str(t0)


# ---------------------------------------------------------------------------------------------
# samples
# ---------------------------------------------------------------------------------------------


def to_uint8(video):
    """[3, T, H, W] in [-1, 1] -> [T, H, W, 3] uint8."""
    return ((video.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()


def save_strip(path, frames, label, scale=3):
    from PIL import Image, ImageDraw

    sel = frames[:: 1 if len(frames) <= 8 else 2]
    T, H, W, _ = sel.shape
    pad, top = 2, 14
    img = Image.new("RGB", (T * (W * scale + pad) + pad, H * scale + top + pad), (255, 255, 255))
    ImageDraw.Draw(img).text((pad, 1), label, fill=(0, 0, 0))
    for i, f in enumerate(sel):
        img.paste(Image.fromarray(f).resize((W * scale, H * scale), Image.NEAREST), (pad + i * (W * scale + pad), top))
    img.save(path, optimize=True)


def save_gif(path, frames, scale=4):
    from PIL import Image

    ims = [Image.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale), Image.NEAREST) for f in frames]
    ims[0].save(path, save_all=True, append_images=ims[1:], duration=int(1000 / FPS), loop=0, optimize=True)


def sample_videos(pkg, dit, vae, enc, prompts, steps, cfg, seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(len(prompts), 4, FRAMES, SIZE // 8, SIZE // 8, generator=g)
    dit.eval()
    with torch.no_grad():
        lat = sampler(pkg, steps, cfg).sample(dit, enc, z, prompts, "cpu", additional_args=size_args(len(prompts)), progress=False)
        video = vae.decode_video(lat)
    return z, lat, video


def slug(p):
    return p.replace(" ", "-")


def write_samples(out, pkg, dit, vae, enc, log):
    sdir = out / "samples"
    sdir.mkdir(parents=True, exist_ok=True)
    for old in sdir.glob("*"):
        old.unlink()
    _, _, video = sample_videos(pkg, dit, vae, enc, SAMPLE_PROMPTS, SAMPLE_STEPS, SAMPLE_CFG, SEEDS["sample"])
    for p, v in zip(SAMPLE_PROMPTS, video):
        frames = to_uint8(v)
        save_strip(sdir / f"{slug(p)}.png", frames, p)
        save_gif(sdir / f"{slug(p)}.gif", frames)
    log(f"samples: {len(SAMPLE_PROMPTS)} prompts, {SAMPLE_STEPS} steps, cfg {SAMPLE_CFG} -> {sdir}")


# ---------------------------------------------------------------------------------------------
# export: weights, configs, fixtures
# ---------------------------------------------------------------------------------------------


def save_component(h, d, config, state, note, settings=None):
    d.mkdir(parents=True, exist_ok=True)
    write_json(d / "config.json", config)
    tensors = {k: v.detach().float().contiguous() for k, v in state.items()}
    tmp = d / "model.safetensors.tmp"
    meta = {"format": "pt", "generator": "examples/tiny-pipeline/train.py", "note": note}
    if settings is not None:
        meta["settings"] = json.dumps(settings, sort_keys=True)
    h.save_safetensors(str(tmp), tensors, metadata=meta)
    os.replace(tmp, d / "model.safetensors")


def reuse_vae(h, path, settings):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        stored = json.loads(f.read(n)).get("__metadata__", {}).get("settings")
    if stored != json.dumps(settings, sort_keys=True):
        sys.exit(f"--reuse-vae: {path} was trained with other settings; train it again (drop --reuse-vae)")
    vae = AutoencoderKL(VAE_CONFIG)
    vae.load_state_dict(h.read_safetensors(path, ("F32",)))
    return vae.eval()


def save_fixture(h, d, name, tensors, meta=None):
    d.mkdir(parents=True, exist_ok=True)
    h.save_safetensors(str(d / f"{name}.safetensors"), {k: v.detach().contiguous() for k, v in tensors.items()})
    if meta is not None:
        write_json(d / "meta.json", meta)


def export_fixtures(h, fx, pkg, sp, t5, vae, dit, log):
    """Small inputs and the PyTorch outputs of the exported weights, for tests/demo (sorac must reproduce them)."""
    g = torch.Generator().manual_seed(SEEDS["fixtures"])
    prompts = ["a red ball moving right", "a blue square moving up on a white background", "a qu1ck zebra"]
    ids, mask = tokenize(sp, prompts)
    with torch.no_grad():
        save_fixture(h, fx / "tokenizer", "ids", dict(input_ids=ids, attention_mask=mask),
                     dict(prompts=prompts, pieces=[sp.encode(p, out_type=str) for p in prompts],
                          note="T5Tokenizer(padding='max_length', max_length=%d, add_special_tokens=True) semantics: "
                               "sentencepiece ids, then eos=1, then pad=0" % TOKENS))
        save_fixture(h, fx / "text_encoder", "inputs", dict(input_ids=ids, attention_mask=mask))
        save_fixture(h, fx / "text_encoder", "outputs", dict(output=t5(ids, mask)),
                     dict(model="examples/t5.sora", entry="forward", prompts=prompts))

        rng = np.random.default_rng(SEEDS["fixtures"])
        clip = torch.from_numpy(render_clip(draw_clip_spec(rng))[None, :, ::4])  # [1, 3, 4, 32, 32]
        z = vae.encode_video(clip)
        zin = torch.randn(1, 4, 4, SIZE // 8, SIZE // 8, generator=g)
        save_fixture(h, fx / "vae_encode_video", "inputs", dict(x=clip))
        save_fixture(h, fx / "vae_encode_video", "outputs", dict(z=z), dict(model="examples/sd_vae.sora", entry="encode_video"))
        save_fixture(h, fx / "vae_decode_video", "inputs", dict(z=zin))
        save_fixture(h, fx / "vae_decode_video", "outputs", dict(x=vae.decode_video(zin)),
                     dict(model="examples/sd_vae.sora", entry="decode_video"))

        enc = FrozenT5(sp, t5, dit)
        e = enc.encode(prompts[:1])
        x = torch.randn(2, 4, FRAMES, SIZE // 8, SIZE // 8, generator=g)
        inputs = dict(x=x, timestep=torch.tensor([700.0, 700.0]), y=torch.cat([e["y"], enc.null(1)]), mask=e["mask"], **size_args(1))
        dit.eval()
        save_fixture(h, fx / "transformer", "inputs", inputs)
        save_fixture(h, fx / "transformer", "outputs", dict(output=dit(**inputs)),
                     dict(model="examples/stdit3.sora", entry="forward",
                          note="the CFG call of RFLOW.sample: x/timestep/y doubled (y row 1 = y_embedder.y_embedding), "
                               "mask/fps/height/width with the prompt batch"))

        # the whole pipeline for one prompt and fixed initial noise: what `sorac generate` must reproduce
        steps, cfg, prompt = 10, SAMPLE_CFG, "a yellow triangle bouncing on a gray background"
        z0, lat, video = sample_videos(pkg, dit, vae, enc, [prompt], steps, cfg, SEEDS["fixtures"])
        pid, pmask = tokenize(sp, [prompt])
        save_fixture(h, fx / "pipeline", "inputs", dict(input_ids=pid, attention_mask=pmask, noise=z0, **size_args(1)))
        save_fixture(h, fx / "pipeline", "outputs", dict(latents=lat, video=video),
                     dict(prompt=prompt, num_sampling_steps=steps, cfg_scale=cfg, num_timesteps=1000,
                          timesteps=[(1.0 - i / steps) * 1000 for i in range(steps)],
                          sampler="opensora/schedulers/rf/__init__.py@v1.2.0 RFLOW.sample, use_timestep_transform=False, "
                                  "use_discrete_timesteps=False: z += (pred_uncond + cfg*(pred_cond - pred_uncond)) * dt/1000 with "
                                  "pred = first in_channels of the output, the batch [cond, uncond], y_null = y_embedder.y_embedding",
                          video="vae.decode_video(latents) (per frame, z / 0.18215), values in [-1, 1]"))
    log(f"fixtures -> {fx}")


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: a few steps of everything (needs --out elsewhere)")
    ap.add_argument("--out", default=str(HERE), help="where the component directories go (default: this directory)")
    ap.add_argument("--fixtures", default=None, help="test fixtures directory (default: tests/demo/fixtures, or OUT/fixtures with --quick)")
    ap.add_argument("--open-sora-root", default=os.environ.get("OPEN_SORA_ROOT"), help="directory holding os-v1.2.0/opensora (env OPEN_SORA_ROOT)")
    ap.add_argument("--set", action="append", default=[], metavar="K=V", help="override a training setting (e.g. dit_steps=100)")
    ap.add_argument("--reuse-vae", action="store_true",
                    help="load OUT/vae instead of training it again (only if it was trained with the same settings)")
    a = ap.parse_args()
    if not a.open_sora_root or not (Path(a.open_sora_root) / "os-v1.2.0" / "opensora").is_dir():
        sys.exit("set OPEN_SORA_ROOT to a directory holding os-v1.2.0/opensora "
                 "(git -C <Open-Sora clone> archive v1.2.0 opensora | tar -x -C $OPEN_SORA_ROOT/os-v1.2.0)")
    out = Path(a.out).resolve()
    if a.quick and out == HERE:
        sys.exit("--quick writes throwaway weights: give --out DIR (not the bundled directory)")
    fx = Path(a.fixtures).resolve() if a.fixtures else (out / "fixtures" if a.quick else FIXTURES)
    P = dict(QUICK if a.quick else FULL)
    for kv in a.set:
        k, v = kv.split("=", 1)
        P[k] = type(P[k])(v)

    torch.set_num_threads(1)
    h = load_harness()
    torch.set_num_threads(1)
    stdit3, rf, pkg = load_opensora(h, a.open_sora_root)
    out.mkdir(parents=True, exist_ok=True)
    logf = open(out / "train.log", "w")
    t_start = Clock()

    def log(msg):
        print(msg, flush=True)
        if logf:
            logf.write(msg + "\n")

    log(f"settings: {json.dumps(P)}")
    prompts = all_prompts()
    sp = train_tokenizer(out / "tokenizer", prompts)
    log(f"tokenizer: {sp.get_piece_size()} pieces; {len(prompts)} grammar sentences; "
        f"longest {max(len(sp.encode(p)) for p in prompts) + 1} tokens with eos (L = {TOKENS})")

    t5 = T5Encoder(T5_CONFIG)
    t5.init_hf(T5_CONFIG, torch.Generator().manual_seed(SEEDS["t5"]))
    t5.eval()
    with torch.no_grad():
        ids, mask = tokenize(sp, SAMPLE_PROMPTS)
        e = t5(ids, mask)
        flat = (e * mask[..., None]).flatten(1)
        cos = F.normalize(flat, dim=1) @ F.normalize(flat, dim=1).T
        log(f"t5: token rms {e.pow(2).mean().sqrt().item():.3f}; cosine between the {len(SAMPLE_PROMPTS)} sample prompts' "
            f"embeddings: max off-diagonal {(cos - 2 * torch.eye(len(SAMPLE_PROMPTS))).max().item():.3f}")
    save_component(h, out / "text_encoder", T5_CONFIG, export_t5_state(t5), "frozen seeded random T5 v1.1 encoder (HF _init_weights scales)")

    vae_settings = dict(config=VAE_CONFIG, frames=FRAMES, **{k: v for k, v in P.items() if k.startswith("vae_") or k in ("kl_weight", "fg_weight", "warmup")})
    if a.reuse_vae:
        vae = reuse_vae(h, out / "vae" / "model.safetensors", vae_settings)
        t_vae = "reused"
        log(f"vae: reused {out / 'vae'}")
    else:
        vae, t_vae = train_vae(P, log)
        save_component(h, out / "vae", VAE_CONFIG, vae.state_dict(),
                       "trained on synthetic 32x32 frames; latent normalisation folded into quant_conv/post_quant_conv", vae_settings)

    data = make_dataset(P, vae, t5, sp, log)
    dit, t_dit = train_dit(P, stdit3, rf, data, log)
    save_component(h, out / "transformer", STDIT3_CONFIG, dit.state_dict(), "EMA weights, rectified flow on the vae latents")

    enc = FrozenT5(sp, t5, dit)
    write_samples(out, pkg, dit, vae, enc, log)
    write_json(out / "sampling.json", dict(
        sampler="rflow (Open-Sora v1.2.0 RFLOW.sample)", num_sampling_steps=SAMPLE_STEPS, cfg_scale=SAMPLE_CFG,
        num_timesteps=1000, use_timestep_transform=False, use_discrete_timesteps=False, num_frames=FRAMES, height=SIZE,
        width=SIZE, fps=FPS, latent_size=[FRAMES, SIZE // 8, SIZE // 8], latent_channels=4, scaling_factor=SCALING,
        text_max_length=TOKENS))
    export_fixtures(h, fx, pkg, sp, t5, vae, dit, log)
    log(f"time: vae {t_vae}, dit {t_dit}, total {t_start} (torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread)")


if __name__ == "__main__":
    main()
