"""Tiny random-weight checkpoints, built offline from configs, saved like real ones.

    python -m nhr_ray.testing.tiny_models DIR

writes, in about ten seconds on a laptop CPU:

    DIR/flux-tiny/        FluxPipeline folder (transformer, VAE, CLIP + T5 encoders and tokenizers)
    DIR/kontext-tiny/     FluxKontextPipeline on the same parts
    DIR/pix2pix-tiny/     StableDiffusionInstructPix2PixPipeline (UNet with 8 input channels)
    DIR/qwen25vl-tiny/    Qwen2.5-VL with its tokenizer, PIL image processor and chat template
    DIR/qwen-edit-tiny/   QwenImageEditPipeline (QwenImage transformer + VAE, that Qwen2.5-VL as encoder)

Each loads back through the same `from_pretrained` path a user's checkpoint takes, so the backends
run their real code on them. Tokenizers are trained here with the `tokenizers` library: no hub.
The weights are random: images are noise and judges say nonsense, which is what the tests need.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nhr_ray.testing.tiny_tokenizers import QWEN_CHAT_TEMPLATE, QWEN_SPECIAL, clip_tokenizer, qwen_tokenizer, t5_tokenizer

NAMES = {
    "t2i": "flux-tiny", "kontext": "kontext-tiny", "pix2pix": "pix2pix-tiny", "vlm": "qwen25vl-tiny",
    "qwen_edit": "qwen-edit-tiny",
}  # fmt: skip


# ----- FLUX ----------------------------------------------------------------------------------------


def flux_components(seed: int = 0) -> dict:
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    clip_tok, t5_tok = clip_tokenizer(), t5_tokenizer()
    torch.manual_seed(seed)
    clip = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(clip_tok), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=77, projection_dim=32,
            bos_token_id=clip_tok.convert_tokens_to_ids("<|startoftext|>"),
            eos_token_id=clip_tok.convert_tokens_to_ids("<|endoftext|>"), pad_token_id=1,
        )
    )  # fmt: skip
    t5 = T5EncoderModel(
        T5Config(
            vocab_size=len(t5_tok), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
            relative_attention_num_buckets=8, decoder_start_token_id=0,
        )
    )  # fmt: skip
    # 2 down blocks: VAE scale 2; a 64x64 image is 32x32 latents, 16x16 = 256 tokens after packing.
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
        latent_channels=4, norm_num_groups=4, sample_size=64, use_quant_conv=False,
        use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035,
    )  # fmt: skip
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
        guidance_embeds=False, axes_dims_rope=(4, 6, 6),
    )  # fmt: skip
    return {
        "scheduler": FlowMatchEulerDiscreteScheduler(),
        "vae": vae,
        "text_encoder": clip,
        "tokenizer": clip_tok,
        "text_encoder_2": t5,
        "tokenizer_2": t5_tok,
        "transformer": transformer,
    }


def build_flux(out: Path, seed: int = 0) -> Path:
    from diffusers import FluxPipeline

    FluxPipeline(**flux_components(seed)).save_pretrained(out)
    return out


def build_kontext(out: Path, seed: int = 0) -> Path:
    from diffusers import FluxKontextPipeline

    FluxKontextPipeline(**flux_components(seed)).save_pretrained(out)
    return out


# ----- InstructPix2Pix -----------------------------------------------------------------------------


def build_pix2pix(out: Path, seed: int = 0) -> Path:
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerAncestralDiscreteScheduler,
        StableDiffusionInstructPix2PixPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    tok = clip_tokenizer()
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=32, in_channels=8, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
        norm_num_groups=4, attention_head_dim=4,
    )  # fmt: skip
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
        latent_channels=4, norm_num_groups=4, sample_size=64,
    )  # fmt: skip
    clip = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tok), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=77, projection_dim=32,
            bos_token_id=tok.convert_tokens_to_ids("<|startoftext|>"),
            eos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"), pad_token_id=1,
        )
    )  # fmt: skip
    pipe = StableDiffusionInstructPix2PixPipeline(
        vae=vae, text_encoder=clip, tokenizer=tok, unet=unet,
        scheduler=EulerAncestralDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipe.save_pretrained(out)
    return out


# ----- Qwen2.5-VL ----------------------------------------------------------------------------------


def qwen25vl_parts(seed: int = 0) -> tuple:
    """(model, tokenizer, PIL image processor): a ~200k-parameter Qwen2.5-VL and its pre-processing."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tok = qwen_tokenizer()
    ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN_SPECIAL}
    # head_dim = 32 / 2 = 16; mrope_section sums to head_dim / 2
    text = dict(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
        rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]}, rope_theta=10000.0,
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
    )  # fmt: skip
    vision = dict(
        depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32, patch_size=14,
        spatial_merge_size=2, temporal_patch_size=2, window_size=56, fullatt_block_indexes=[1],
        in_chans=3,
    )  # fmt: skip
    cfg = Qwen2_5_VLConfig(
        text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=True,
        bos_token_id=text["bos_token_id"], eos_token_id=text["eos_token_id"], pad_token_id=text["pad_token_id"],
    )  # fmt: skip
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(cfg)
    model.generation_config.do_sample = False
    model.generation_config.eos_token_id = text["eos_token_id"]
    model.generation_config.pad_token_id = text["pad_token_id"]
    # small pixel budget: an image becomes at most 8x8 patches of 14 px, i.e. 16 merged tokens
    improc = Qwen2VLImageProcessorPil(min_pixels=28 * 28, max_pixels=112 * 112, patch_size=14, merge_size=2)
    return model, tok, improc


def build_qwen25vl(out: Path, seed: int = 0) -> Path:
    model, tok, improc = qwen25vl_parts(seed)
    model.save_pretrained(out)
    improc.save_pretrained(out)
    tok.save_pretrained(out)
    (out / "chat_template.json").write_text(json.dumps({"chat_template": QWEN_CHAT_TEMPLATE}))
    return out


# ----- Qwen-Image-Edit -----------------------------------------------------------------------------


def build_qwen_edit(out: Path, seed: int = 0) -> Path:
    """QwenImageEditPipeline laid out like Qwen/Qwen-Image-Edit: the tiny Qwen2.5-VL as text encoder,
    its tokenizer, a `processor/` folder (tokenizer + image processor + chat template, recorded as
    transformers' Qwen2VLProcessor), a small QwenImage VAE and a one-block QwenImage transformer.

    The pipeline is assembled with a torchvision-free processor (the stock Qwen2VLProcessor needs
    torchvision for its video half); loading it back needs the same: see
    nhr_ray.backends.diffusers_edit, which passes `processor=` to from_pretrained."""
    import torch
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageEditPipeline,
        QwenImageTransformer2DModel,
    )

    text_encoder, tok, improc = qwen25vl_parts(seed)
    torch.manual_seed(seed + 1)
    z = 4
    # 4 spatial halvings: VAE scale 16, so the pipeline's 1024x1024 conditioning image is 64x64
    # latents (1024 tokens after 2x2 packing) and a 64x64 output is 4x4 latents.
    vae = AutoencoderKLQwenImage(
        base_dim=8, z_dim=z, dim_mult=[1, 1, 1, 1, 1], num_res_blocks=1,
        temperal_downsample=[False, False, False, True], latents_mean=[0.0] * z, latents_std=[1.0] * z,
    )  # fmt: skip
    transformer = QwenImageTransformer2DModel(
        patch_size=2, in_channels=4 * z, out_channels=z, num_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=text_encoder.config.text_config.hidden_size,
        axes_dims_rope=(4, 6, 6),
    )  # fmt: skip
    pipe = QwenImageEditPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=True, base_image_seq_len=256, max_image_seq_len=4096),
        vae=vae, text_encoder=text_encoder, tokenizer=tok, processor=None, transformer=transformer,
    )  # fmt: skip
    pipe.save_pretrained(out)
    # the processor as the real checkpoint stores it: its parts in processor/, the class in model_index
    proc_dir = out / "processor"
    tok.save_pretrained(proc_dir)
    improc.save_pretrained(proc_dir)
    (proc_dir / "chat_template.json").write_text(json.dumps({"chat_template": QWEN_CHAT_TEMPLATE}))
    index = json.loads((out / "model_index.json").read_text())
    index["processor"] = ["transformers", "Qwen2VLProcessor"]
    (out / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return out


BUILDERS = {
    "t2i": build_flux, "kontext": build_kontext, "pix2pix": build_pix2pix, "vlm": build_qwen25vl,
    "qwen_edit": build_qwen_edit,
}  # fmt: skip


def build_all(root: str | Path, only: list[str] | None = None) -> dict[str, Path]:
    """Build every tiny checkpoint under `root` (skipping folders already complete)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    done = {}
    for key, fn in BUILDERS.items():
        if only and key not in only:
            continue
        path = root / NAMES[key]
        marker = path / ".complete"
        if not marker.exists():
            fn(path)
            marker.write_text("ok\n")
        done[key] = path
    return done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nhr_ray.testing.tiny_models", description=__doc__.split("\n")[0])
    ap.add_argument("root", help="folder to write the checkpoints into")
    ap.add_argument("--only", nargs="*", choices=sorted(BUILDERS), help="build only these")
    args = ap.parse_args(argv)
    for key, path in build_all(args.root, args.only).items():
        print(f"{key:10s} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
