"""Train-step speed of any genlab model beside a plain fp32 eager PyTorch loop of the same networks.

Both loops train the same architecture on the same batches in the same process; blocks of steps
alternate between them so machine noise hits both alike. The plain loops are the textbook ones:
the VAE step below, for GANs the PyTorch DCGAN example's step (one D update on a real and a
fake batch, then one non-saturating G update), for CycleGAN the reference implementation's step
(without its image pool and jitter); Adam with the config's learning rate and betas. genlab's
step includes drawing the batch from its data source (plain loops get pre-built batches).

    python benchmarks/train_speed.py [--config configs/vae-mnist.yaml] [--steps 30] [--threads 2] [key=value ...]

Prints images/s of each and writes benchmarks/results/<config name>_speed.json (``--out`` elsewhere).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from genlab import registry
from genlab.config import load_config
from genlab.core.noise import SharedNoise
from genlab.data.datasets import load_source
from genlab.registry import build_model

ROOT = Path(__file__).resolve().parents[1]


def plain_vae_step(nets, optimizers, x):
    """The textbook VAE step: fp32, eager, one optimizer, no genlab machinery."""
    encoder, decoder = nets
    mu, logvar = encoder(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    logits = decoder(z)
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum() / x.shape[0]
    optimizers[0].zero_grad()
    (recon + kl).backward()
    optimizers[0].step()


def plain_gan_step(nets, optimizers, x, latent_dim):
    """The PyTorch DCGAN example's step: D on real + detached fake (BCE), then G non-saturating."""
    generator, discriminator = nets
    opt_g, opt_d = optimizers
    n = x.shape[0]
    ones, zeros = torch.ones(n, 1), torch.zeros(n, 1)
    fake = generator(torch.randn(n, latent_dim))
    d_loss = (F.binary_cross_entropy_with_logits(discriminator(x).view(n, 1), ones)
              + F.binary_cross_entropy_with_logits(discriminator(fake.detach()).view(n, 1), zeros))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    g_loss = F.binary_cross_entropy_with_logits(discriminator(fake).view(n, 1), ones)
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()


def plain_cyclegan_step(nets, optimizers, x, y, lam=10.0, lam_id=0.5):
    """The reference implementation's step (junyanz ``CycleGANModel.optimize_parameters``): G_A/G_B with
    LSGAN, cycle and identity L1 (Ds frozen), then D_A/D_B on the current fakes (no pool, no jitter), halved."""
    g_a, g_b, d_a, d_b = nets
    opt_g, opt_d = optimizers
    fake_b, fake_a = g_a(x), g_b(y)
    rec_a, rec_b = g_b(fake_b), g_a(fake_a)
    for d in (d_a, d_b):
        d.requires_grad_(False)
    pred_b, pred_a = d_a(fake_b), d_b(fake_a)
    g_loss = (F.mse_loss(pred_b, torch.ones_like(pred_b)) + F.mse_loss(pred_a, torch.ones_like(pred_a))
              + lam * (F.l1_loss(rec_a, x) + F.l1_loss(rec_b, y))
              + lam * lam_id * (F.l1_loss(g_a(y), y) + F.l1_loss(g_b(x), x)))
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    for d in (d_a, d_b):
        d.requires_grad_(True)
    d_loss = 0.0
    for d, real, fake in ((d_a, y, fake_b), (d_b, x, fake_a)):
        pr, pf = d(real), d(fake.detach())
        d_loss = d_loss + 0.5 * (F.mse_loss(pr, torch.ones_like(pr)) + F.mse_loss(pf, torch.zeros_like(pf)))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()


def plain_loop(cfg, args):
    """Fresh networks of the same architecture, plain Adam, and the family's plain step function."""
    reference = build_model(load_config(args.config, [f"train.batch_size={args.batch_size}", *args.overrides]))
    lr = cfg.train.lr
    if cfg.model.family == "gan":
        nets = (reference.generator, reference.discriminator)
        betas = tuple(cfg.model.betas)
        optimizers = [torch.optim.Adam(net.parameters(), lr=lr, betas=betas) for net in nets]
        return lambda x: plain_gan_step(nets, optimizers, x, cfg.model.latent_dim)
    if cfg.model.family == "vae":
        nets = (reference.encoder, reference.decoder)
        optimizers = [torch.optim.Adam([p for net in nets for p in net.parameters()], lr=lr)]
        return lambda x: plain_vae_step(nets, optimizers, x)
    if cfg.model.family == "cyclegan":
        nets = (reference.G_A, reference.G_B, reference.D_A, reference.D_B)
        betas = tuple(cfg.model.betas)
        optimizers = [torch.optim.Adam([p for n in nets[:2] for p in n.parameters()], lr=lr, betas=betas),
                      torch.optim.Adam([p for n in nets[2:] for p in n.parameters()], lr=lr, betas=betas)]
        return lambda x, y: plain_cyclegan_step(nets, optimizers, x, y, cfg.model.lambda_cycle, cfg.model.lambda_identity)
    raise SystemExit(f"no plain loop for family {cfg.model.family!r}; allowed: vae, gan, cyclegan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "vae-mnist.yaml"))
    parser.add_argument("--steps", type=int, default=30, help="timed steps per loop (in blocks of 5)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("overrides", nargs="*", help="config overrides for both loops' networks, e.g. model.preset=seed")
    parser.add_argument("--genlab-only", nargs="*", default=[], metavar="KEY=VALUE",
                        help="overrides for genlab's loop only, e.g. train.precision=bf16 train.channels_last=false")
    parser.add_argument("--out", help="JSON file to write (default benchmarks/results/<config name>_speed.json)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    cfg = load_config(args.config, [f"train.batch_size={args.batch_size}", *args.overrides, *args.genlab_only])
    data = load_source(cfg.data, "train", registry.get(cfg.model.family).data_kind)
    model = build_model(cfg)
    model.noise = SharedNoise(0)
    layout = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    model.to(memory_format=layout)
    plain_step = plain_loop(cfg, args)

    batches = [torch.randint(0, len(data), (args.batch_size,), generator=torch.Generator().manual_seed(i)) for i in range(5)]
    inputs = [data.batch(b, SharedNoise(i), torch.device("cpu")) for i, b in enumerate(batches)]
    model.set_lr_schedule("constant", 1)
    timings = {"plain_fp32_eager": 0.0, "genlab": 0.0}
    step = 0

    def genlab_block():
        nonlocal step
        for b in batches:
            batch = data.batch(b, model.noise, torch.device("cpu"))  # data loading is part of genlab's step
            batch = {k: v.contiguous(memory_format=layout) if v.dim() == 4 else v for k, v in batch.items()}
            model.train_step(batch, step)
            step += 1

    def plain_block():
        for batch in inputs:
            plain_step(*(batch[k] for k in ("image", "image_b") if k in batch))

    genlab_block(), plain_block()  # warm-up (and compilation, if configured)
    for _ in range(max(1, args.steps // 5)):
        for name, block in (("genlab", genlab_block), ("plain_fp32_eager", plain_block)):
            started = time.perf_counter()
            block()
            timings[name] += time.perf_counter() - started
    images = max(1, args.steps // 5) * 5 * args.batch_size
    result = {name: images / seconds for name, seconds in timings.items()}
    result |= {"ratio": result["genlab"] / result["plain_fp32_eager"], "batch_size": args.batch_size,
               "threads": args.threads, "config": Path(args.config).name, "overrides": args.overrides,
               "genlab_only": args.genlab_only, "steps": images // args.batch_size}
    print(json.dumps(result, indent=2))
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / f"{Path(args.config).stem}_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
