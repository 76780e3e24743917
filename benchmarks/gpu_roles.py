"""GPU cost of the three heavy roles, on full-size random weights (no checkpoints needed):

    t2i      seconds per source image: FLUX.1-schnell-size transformer + VAE, 1024x1024, 4 steps
    editor   seconds per edit attempt: the same transformer Kontext-style (source tokens appended), 28 steps
    gate     judge calls per second: a Qwen2.5-VL-7B-size model, two images + prompt, prefill + 1 token

Each role is measured eager first, then with the speed-ups asked for, applied cumulatively in this
order: --fuse-qkv, --attention-backend, --compile; every figure sits next to the eager baseline of
the same run. Text encoders are left out (prompt embeddings are random tensors of the real shapes):
they run once per prompt and are small next to the denoiser.

    python benchmarks/gpu_roles.py [--roles t2i editor gate] [--compile] [--fuse-qkv] [--attention-backend flash]

On a machine without CUDA it runs tiny configs on the CPU (--tiny, automatic) so it cannot rot; those
figures mean nothing. The last line printed is the JSON result.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time

import torch
from diffusers.utils import logging as diffusers_logging

diffusers_logging.set_verbosity_error()  # from_config casts warn about fp32 modules; nothing to act on

FULL = {
    "flux": dict(
        patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
        num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, axes_dims_rope=(16, 56, 56),
    ),
    "vae": dict(
        in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.1159, scaling_factor=0.3611,
    ),
    "text_len": 256, "size": 1024, "t2i_steps": 4, "edit_steps": 28,
    "qwen_text": dict(
        vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
        num_key_value_heads=4, max_position_embeddings=32768, rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]},
    ),
    "qwen_vision": dict(
        depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584, patch_size=14,
        spatial_merge_size=2, temporal_patch_size=2, window_size=112, fullatt_block_indexes=[7, 15, 23, 31],
    ),
    "judge_image": 952, "judge_prompt_tokens": 120,
}  # fmt: skip

TINY = {
    "flux": dict(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
        joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=(4, 6, 6),
    ),
    "vae": dict(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=4,
        use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035,
    ),
    "text_len": 16, "size": 64, "t2i_steps": 4, "edit_steps": 28,
    "qwen_text": dict(
        vocab_size=512, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=4096, rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
    ),
    "qwen_vision": dict(
        depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32, patch_size=14,
        spatial_merge_size=2, temporal_patch_size=2, window_size=56, fullatt_block_indexes=[1],
    ),
    "judge_image": 112, "judge_prompt_tokens": 40,
}  # fmt: skip

# token ids of the synthetic judge prompt (Qwen2.5-VL's vision markers)
IMAGE_PAD, VISION_START, VISION_END = 151655, 151652, 151653


def timed(fn, device, warmup: int, repeats: int) -> float:
    """Median wall seconds of fn() after warm-up calls (synchronised on CUDA)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def variants(args) -> list[tuple[str, dict]]:
    """Cumulative speed-ups, eager first."""
    out, cur = [("eager", {})], {}
    if args.fuse_qkv:
        cur = {**cur, "fuse_qkv": True}
        out.append(("+fuse_qkv", dict(cur)))
    if args.attention_backend:
        cur = {**cur, "attention_backend": args.attention_backend}
        out.append((f"+attn:{args.attention_backend}", dict(cur)))
    if args.compile:
        cur = {**cur, "compile": True}
        out.append(("+compile", dict(cur)))
    return out


def apply(net, applied: dict, want: dict) -> None:
    """Bring a diffusers denoiser from the `applied` speed-ups to `want` (only ever adds)."""
    if want.get("fuse_qkv") and not applied.get("fuse_qkv"):
        net.fuse_qkv_projections()
    if want.get("attention_backend") and not applied.get("attention_backend"):
        net.set_attention_backend(want["attention_backend"])
    if want.get("compile") and not applied.get("compile"):
        net.compile(fullgraph=False, dynamic=False)
    applied.update(want)


def flux_pipe(cfg, kontext: bool, device, dtype):
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxKontextPipeline, FluxPipeline, FluxTransformer2DModel

    with torch.device(device):
        transformer = FluxTransformer2DModel(**cfg["flux"], guidance_embeds=kontext).to(dtype)
        vae = AutoencoderKL(**cfg["vae"]).to(dtype)
    cls = FluxKontextPipeline if kontext else FluxPipeline
    sched = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15)
    pipe = cls(scheduler=sched, vae=vae, text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None, transformer=transformer)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def bench_flux(args, cfg, device, dtype, kontext: bool) -> dict:
    pipe = flux_pipe(cfg, kontext, device, dtype)
    size, steps = cfg["size"], args.steps or cfg["edit_steps" if kontext else "t2i_steps"]
    embeds = torch.randn(1, cfg["text_len"], cfg["flux"]["joint_attention_dim"], device=device, dtype=dtype)
    pooled = torch.randn(1, cfg["flux"]["pooled_projection_dim"], device=device, dtype=dtype)
    kw = dict(prompt_embeds=embeds, pooled_prompt_embeds=pooled, height=size, width=size, num_inference_steps=steps, output_type="np")
    if kontext:
        src = torch.rand(1, 3, size, size, device=device, dtype=dtype)
        kw.update(image=src, max_area=size * size, _auto_resize=False, guidance_scale=2.5)
    else:
        kw.update(guidance_scale=0.0)

    def run():
        with torch.inference_mode():
            pipe(**kw, generator=torch.Generator("cpu").manual_seed(0))

    res, applied = {}, {}
    for name, want in variants(args):
        apply(pipe.transformer, applied, want)
        res[name] = round(timed(run, device, args.warmup + (1 if want.get("compile") else 0), args.repeats), 4)
    out = {"size": [size, size], "steps": steps, "seconds_per_" + ("attempt" if kontext else "image"): res}
    out["speedup_vs_eager"] = {k: round(res["eager"] / v, 3) for k, v in res.items() if k != "eager"}
    del pipe
    return out


def judge_inputs(cfg, device, dtype):
    """Two images + prompt as Qwen2.5-VL sees them: patch rows and a token sequence with image pads."""
    grid = cfg["judge_image"] // 14
    thw = torch.tensor([[1, grid, grid]] * 2, device=device)
    pixels = torch.randn(2 * grid * grid, 3 * 2 * 14 * 14, device=device, dtype=dtype)
    per_image = grid * grid // 4
    vocab = cfg["qwen_text"]["vocab_size"]
    text = lambda n: torch.randint(0, min(vocab, 150000), (n,)).tolist()  # noqa: E731
    ids = text(20)
    for _ in range(2):
        ids += [VISION_START] + [IMAGE_PAD] * per_image + [VISION_END]
    ids += text(cfg["judge_prompt_tokens"])
    input_ids = torch.tensor([ids], device=device)
    return dict(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), pixel_values=pixels, image_grid_thw=thw)


def bench_gate(args, cfg, device, dtype) -> dict:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    text = dict(cfg["qwen_text"])
    if text["vocab_size"] < 151656:  # tiny: the vision marker ids must exist
        text["vocab_size"] = 151700
    qcfg = Qwen2_5_VLConfig(
        text_config=text, vision_config=cfg["qwen_vision"], image_token_id=IMAGE_PAD, video_token_id=151656,
        vision_start_token_id=VISION_START, vision_end_token_id=VISION_END,
    )  # fmt: skip
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(qcfg, dtype=dtype).eval()
    inputs = judge_inputs(cfg, device, dtype)
    gen = dict(max_new_tokens=args.judge_tokens, min_new_tokens=args.judge_tokens, do_sample=False, pad_token_id=0)

    def run():
        with torch.inference_mode():
            model.generate(**inputs, **gen)

    res = {"eager": timed(run, device, args.warmup, args.repeats)}
    if args.compile:
        model.model.language_model.compile(dynamic=True)
        res["+compile"] = timed(run, device, args.warmup + 1, args.repeats)
    out = {
        "tokens_in": int(inputs["input_ids"].shape[1]),
        "tokens_out": args.judge_tokens,
        "seconds_per_call": {k: round(v, 4) for k, v in res.items()},
        "calls_per_s": {k: round(1.0 / v, 3) for k, v in res.items()},
    }
    del model
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--roles", nargs="+", default=["t2i", "editor", "gate"], choices=["t2i", "editor", "gate"])
    ap.add_argument("--tiny", action="store_true", help="tiny configs on CPU (automatic without CUDA)")
    ap.add_argument("--compile", action="store_true", help="also measure with torch.compile")
    ap.add_argument("--fuse-qkv", action="store_true", help="also measure with fused q/k/v projections (diffusers)")
    ap.add_argument("--attention-backend", default=None, help="also measure with this diffusers attention backend")
    ap.add_argument("--judge-tokens", type=int, default=1, help="tokens the judge generates per call (1: yes/no)")
    ap.add_argument("--steps", type=int, default=None, help="override denoising steps (default: 4 for t2i, 28 for edits)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    cuda = torch.cuda.is_available()
    tiny = args.tiny or not cuda
    device = torch.device("cuda" if cuda and not tiny else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    cfg = TINY if tiny else FULL
    result: dict = {
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "tiny": tiny,
        "dtype": str(dtype).removeprefix("torch."),
        "torch": torch.__version__,
    }
    torch.manual_seed(0)
    for role in args.roles:
        if role == "gate":
            result["gate"] = bench_gate(args, cfg, device, dtype)
        else:
            result[role] = bench_flux(args, cfg, device, dtype, kontext=(role == "editor"))
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
