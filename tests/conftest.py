"""Shared fixtures: tiny configs that train in seconds on the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genlab.config import load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"

#: a small VAE on 64 MNIST images: seconds per epoch
TINY = ["data.limit=64", "data.test_limit=64", "train.batch_size=16", "train.progress=false",
        "model.conv_channels=[4,8,8]", "model.encoder_hidden=[16]", "model.decoder_hidden=[16]", "eval.batch_size=64"]


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(1)  # xdist runs one worker per core


def tiny_config(name: str = "vae-mnist", *extra: str):
    return load_config(CONFIGS / f"{name}.yaml", [*TINY, *extra])
