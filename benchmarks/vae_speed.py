"""Train-step speed of the seed VAE: genlab's step beside a plain fp32 eager PyTorch loop.

Both loops train the same encoder/decoder architecture on the same MNIST batches in the same
process; blocks of steps alternate between them so machine noise hits both alike.

    python benchmarks/vae_speed.py [--steps 30] [--batch-size 128] [--threads 2] [key=value ...]

Prints images/s of each and writes benchmarks/results/vae_speed.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from genlab.config import load_config
from genlab.data.datasets import load_split, make_batch
from genlab.models import build_model
from genlab.train.noise import SharedNoise

ROOT = Path(__file__).resolve().parents[1]


def plain_step(encoder, decoder, optimizer, x):
    """The textbook VAE step: fp32, eager, one optimizer, no genlab machinery."""
    mu, logvar = encoder(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    logits = decoder(z)
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum() / x.shape[0]
    optimizer.zero_grad()
    (recon + kl).backward()
    optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "vae-mnist.yaml"))
    parser.add_argument("--steps", type=int, default=30, help="timed steps per loop (in blocks of 5)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("overrides", nargs="*", help="config overrides for genlab's model, e.g. train.precision=bf16")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    cfg = load_config(args.config, [f"train.batch_size={args.batch_size}", *args.overrides])
    data = load_split(cfg.data, "train")
    model = build_model(cfg)
    model.noise = SharedNoise(0)
    layout = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    model.to(memory_format=layout)
    reference = build_model(load_config(args.config, [f"train.batch_size={args.batch_size}"]))
    encoder, decoder = reference.encoder, reference.decoder
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-3)

    batches = [torch.randint(0, len(data), (args.batch_size,), generator=torch.Generator().manual_seed(i)) for i in range(5)]
    inputs = [make_batch(data, b, cfg.data, torch.device("cpu"), torch.Generator().manual_seed(0)) for b in batches]
    timings = {"plain_fp32_eager": 0.0, "genlab": 0.0}
    step = 0

    def genlab_block():
        nonlocal step
        for b in batches:
            batch = make_batch(data, b, cfg.data, torch.device("cpu"), model.noise)
            batch["image"] = batch["image"].contiguous(memory_format=layout)
            model.train_step(batch, step)
            step += 1

    def plain_block():
        for batch in inputs:
            plain_step(encoder, decoder, optimizer, batch["image"])

    genlab_block(), plain_block()  # warm-up (and compilation, if configured)
    for _ in range(max(1, args.steps // 5)):
        for name, block in (("genlab", genlab_block), ("plain_fp32_eager", plain_block)):
            started = time.perf_counter()
            block()
            timings[name] += time.perf_counter() - started
    images = max(1, args.steps // 5) * 5 * args.batch_size
    result = {name: images / seconds for name, seconds in timings.items()}
    result |= {"ratio": result["genlab"] / result["plain_fp32_eager"], "batch_size": args.batch_size,
               "threads": args.threads, "overrides": args.overrides, "steps": images // args.batch_size}
    print(json.dumps(result, indent=2))
    out = ROOT / "benchmarks" / "results" / "vae_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
