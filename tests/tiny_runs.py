"""Tiny trained runs of every family (a second or two each on one core), for the report and browser tests.

Each ``train_*`` function trains a tiny model into ``out`` and returns the run directory. They train
a few dozen steps with a large learning rate: enough for the eval-mode BatchNorm statistics to settle,
so that different latents, seeds and inputs give visibly different images (a run of 2 steps draws one
flat grey for every input).
The data they need (a two-domain folder with test images, a captioned folder) is written by the
``*_folder`` helpers from drawn shapes, so nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

from conftest import CONFIGS, tiny_config
from genlab.config import load_config
from genlab.train.loop import train

TINY_GAN = ["data.limit=64", "data.test_limit=64", "train.batch_size=16", "train.progress=false", "model.width=8",
            "eval.batch_size=64", "train.epochs=8"]
#: tiny StackGAN networks (as tests/test_stackgan.py): 16×16 Stage-I, 4-channel widths, 16-d hashing embeddings
TINY_STACKGAN = ["train.progress=false", "train.batch_size=4", "model.preset=cpu", "model.ngf=4", "model.ndf=4",
                 "model.c_dim=4", "model.z_dim=8", "data.text_hashing_dim=16", "eval.batch_size=16",
                 "model.lr_decay_epochs=0", "train.epochs=15", "train.lr=0.002",
                 "train.precision=fp32"]  # fp32 on every CPU: in bf16 on an AVX512_BF16 (no AMX) EPYC, Stage-II drew the same image for every caption
COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 60, 220), "yellow": (240, 220, 20)}


def shape(colour: str, kind: str, size: int = 20) -> Image.Image:
    """A filled square or circle of ``colour`` on white."""
    image = Image.new("RGB", (size, size), (255, 255, 255))
    pen = ImageDraw.Draw(image)
    (pen.rectangle if kind == "square" else pen.ellipse)((3, 3, size - 4, size - 4), fill=COLOURS[colour])
    return image


def unpaired_folder(root: Path) -> Path:
    """``trainA/ trainB/ testA/ testB/``: squares (A) and circles (B) in four colours."""
    for split, count in (("train", 4), ("test", 3)):
        for domain, kind in (("A", "square"), ("B", "circle")):
            folder = root / f"{split}{domain}"
            folder.mkdir(parents=True)
            for i, colour in enumerate(list(COLOURS)[:count]):
                shape(colour, kind, 24 + i).save(folder / f"{i}.png")
    return root


def captioned_folder(root: Path) -> Path:
    """``train/`` (8 images) and ``test/`` (4) with ``metadata.jsonl`` captions such as "a red square"."""
    items = [(c, k) for c in COLOURS for k in ("square", "circle")]
    for split, chosen in (("train", items), ("test", items[:4])):
        folder = root / split
        folder.mkdir(parents=True)
        lines = []
        for i, (colour, kind) in enumerate(chosen):
            name = f"{i:02d}_{colour}_{kind}.png"
            shape(colour, kind).save(folder / name)
            lines.append(json.dumps({"file_name": name, "text": [f"a {colour} {kind}", f"{kind}, {colour}"]}))
        (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return root


def train_vae(out: Path, *extra: str) -> Path:
    """A 2-D VAE on 64 MNIST digits (``extra``: more overrides, e.g. ``model.latent_dim=8``)."""
    return train(tiny_config("vae-mnist", "train.epochs=3", "train.lr=0.01", *extra), out)


def train_cvae(out: Path, *extra: str) -> Path:
    """A 2-D CVAE on 64 MNIST digits."""
    return train(tiny_config("cvae-mnist", "train.epochs=3", "train.lr=0.01", *extra), out)


def train_gan(out: Path, *extra: str) -> Path:
    """A DCGAN of width 8 on 64 MNIST digits, 32 steps."""
    return train(load_config(CONFIGS / "dcgan-mnist.yaml", [*TINY_GAN, *extra]), out)


def train_cyclegan(out: Path, data: Path) -> Path:
    """A CycleGAN with 4-channel widths at 32×32 on :func:`unpaired_folder` ``data``."""
    config = load_config(CONFIGS / "cyclegan-folder.yaml", [
        f"data.root={data}", "data.image_size=32", "model.ngf=4", "model.ndf=4", "train.batch_size=2",
        "train.epochs=3", "train.progress=false", "train.checkpoint_every_steps=0"])
    return train(config, out)


def train_stackgan(out: Path, data: Path, stage1: Path | None = None) -> Path:
    """A Stage-I run, or with ``stage1`` a Stage-II run (16 → 64 px) that copies that run's generator."""
    extra = [] if stage1 is None else ["model.stage=2", f"model.stage1_run={stage1}", "data.image_size=64",
                                       "model.upscale=4", "model.res_blocks=1"]
    config = load_config(CONFIGS / "stackgan-folder.yaml", [f"data.root={data}", "data.image_size=16",
                                                              *TINY_STACKGAN, *extra])
    return train(config, out)
