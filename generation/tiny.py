"""A tiny, randomly initialised Stable Diffusion pipeline built from configs: no download, no weights.

It is the real `StableDiffusionPipeline` architecture (UNet, VAE, CLIP text encoder, CLIP tokenizer,
scheduler) shrunk to about a hundred thousand parameters, so tests, benchmarks and offline demos exercise the
real loading and generation code. Its images are coloured noise, not pictures. The VAE keeps Stable
Diffusion's 8x down-sampling, so a 512x512 image is a 64x64 latent, as with the real models.
"""

from __future__ import annotations

from pathlib import Path

TINY_SIZE = 256
"""Default output side of the tiny pipeline: large enough for every watermark scheme (dwtDctSvd needs 256)."""


def tiny_tokenizer():
    """A CLIP tokenizer whose vocabulary is the 256 byte-level symbols (alone and word-final) and no merges:
    every word is spelled out byte by byte, which is all a random text encoder needs."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    symbols = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for symbol in symbols:
        vocab[symbol] = len(vocab)
    for symbol in symbols:
        vocab[symbol + "</w>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def build_tiny_pipeline(seed: int = 0):
    """A `StableDiffusionPipeline` with random weights (seeded, so every build is the same model)."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=77,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    unet = UNet2DConditionModel(
        sample_size=TINY_SIZE // 8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=4,
        norm_num_groups=4,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(4, 4, 4, 4),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        norm_num_groups=2,
        sample_size=TINY_SIZE,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000, steps_offset=1
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_tiny_pipeline(folder: str | Path, seed: int = 0) -> Path:
    """Build the tiny pipeline and `save_pretrained` it into `folder` (a diffusers pipeline folder)."""
    folder = Path(folder)
    build_tiny_pipeline(seed).save_pretrained(folder)
    return folder
