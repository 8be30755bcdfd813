"""Plain fp32 eager PyTorch training steps: the baselines ``genlab bench`` times genlab against.

Each is the textbook step of its family, written as a user would without genlab: the same networks
(fresh copies of a genlab model's modules), fp32, eager, the default contiguous memory layout,
``torch.optim.Adam`` with the config's learning rate and betas, pre-built batches (no data loading):

* VAE — Kingma & Welling's ELBO step: Bernoulli reconstruction + analytic KL, one optimizer;
* GAN — the PyTorch DCGAN example's step: D on a real and a detached fake batch (BCE), then one
  non-saturating G update;
* CycleGAN — the reference implementation's ``optimize_parameters`` (junyanz): G_A/G_B with LSGAN,
  cycle and identity L1 (Ds frozen), then D_A/D_B on the current fakes, halved (no pool, no jitter);
* StackGAN — the authors' ``GANTrainer.train`` step (hanzhanggit/StackGAN-Pytorch): D on (real,
  text), (real[:-1], text[1:]) and (fake, text), errD = real + ½(wrong + fake); then G's BCE + 2·KL.

A family without an entry here is benchmarked without a baseline (``genlab bench`` says so).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

#: a plain step takes the batch dict that genlab's data source produced (images as built, fp32)
PlainStep = Callable[[dict[str, torch.Tensor]], None]


def _adam(params, cfg, betas=None) -> torch.optim.Adam:
    return torch.optim.Adam(list(params), lr=cfg.train.lr, betas=tuple(betas) if betas else (0.9, 0.999))


def vae_step(model, cfg) -> PlainStep:
    encoder, decoder = model.encoder, model.decoder
    opt = _adam([*encoder.parameters(), *decoder.parameters()], cfg)

    def step(batch):
        x = batch["image"]
        mu, logvar = encoder(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        logits = decoder(z)
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum() / x.shape[0]
        opt.zero_grad()
        (recon + kl).backward()
        opt.step()

    return step


def gan_step(model, cfg) -> PlainStep:
    generator, discriminator = model.generator, model.discriminator
    opt_g, opt_d = (_adam(net.parameters(), cfg, cfg.model.betas) for net in (generator, discriminator))
    latent = cfg.model.latent_dim

    def step(batch):
        x = batch["image"]
        n = x.shape[0]
        ones, zeros = torch.ones(n, 1), torch.zeros(n, 1)
        fake = generator(torch.randn(n, latent))
        d_loss = (F.binary_cross_entropy_with_logits(discriminator(x).view(n, 1), ones)
                  + F.binary_cross_entropy_with_logits(discriminator(fake.detach()).view(n, 1), zeros))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = F.binary_cross_entropy_with_logits(discriminator(fake).view(n, 1), ones)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()

    return step


def cyclegan_step(model, cfg) -> PlainStep:
    g_a, g_b, d_a, d_b = model.G_A, model.G_B, model.D_A, model.D_B
    opt_g = _adam([*g_a.parameters(), *g_b.parameters()], cfg, cfg.model.betas)
    opt_d = _adam([*d_a.parameters(), *d_b.parameters()], cfg, cfg.model.betas)
    lam, lam_id = cfg.model.lambda_cycle, cfg.model.lambda_identity

    def step(batch):
        x, y = batch["image"], batch["image_b"]
        fake_b, fake_a = g_a(x), g_b(y)
        rec_a, rec_b = g_b(fake_b), g_a(fake_a)
        for d in (d_a, d_b):
            d.requires_grad_(False)
        pred_b, pred_a = d_a(fake_b), d_b(fake_a)
        g_loss = (F.mse_loss(pred_b, torch.ones_like(pred_b)) + F.mse_loss(pred_a, torch.ones_like(pred_a))
                  + lam * (F.l1_loss(rec_a, x) + F.l1_loss(rec_b, y)))
        if lam_id:
            g_loss = g_loss + lam * lam_id * (F.l1_loss(g_a(y), y) + F.l1_loss(g_b(x), x))
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

    return step


def stackgan_step(model, cfg) -> PlainStep:
    if model.stage1 is not None:
        raise ValueError("the plain StackGAN step is Stage-I's (model.stage=1)")
    generator, disc = model.generator, model.discriminator.net
    opt_g, opt_d = (_adam(net.parameters(), cfg, cfg.model.betas) for net in (generator, disc))
    m = cfg.model

    def logits(image, condition):
        return disc.conditional_logits(disc.encode(image), condition)

    def step(batch):
        real, text = batch["image"], batch["text_embedding"].float()
        n = real.shape[0]
        fake, mu, logvar = generator(text, torch.randn(n, m.z_dim), torch.randn(n, m.c_dim))
        cond = text if m.d_condition == "embedding" else mu.detach()  # D's text input, as model.d_condition says
        ones, zeros = torch.ones(n), torch.zeros(n)
        err_real = F.binary_cross_entropy_with_logits(logits(real, cond), ones)
        err_wrong = F.binary_cross_entropy_with_logits(logits(real[:-1], cond[1:]), zeros[1:])
        err_fake = F.binary_cross_entropy_with_logits(logits(fake.detach(), cond), zeros)
        opt_d.zero_grad()
        (err_real + 0.5 * (err_wrong + err_fake)).backward()
        opt_d.step()
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).mean()
        g_loss = F.binary_cross_entropy_with_logits(logits(fake, cond), ones) + m.kl_coeff * kl
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()

    return step


#: family name → builder of its plain step from a (separately built) genlab model and its config
PLAIN_STEPS: dict[str, Callable[..., PlainStep]] = {
    "vae": vae_step,
    "gan": gan_step,
    "cyclegan": cyclegan_step,
    "stackgan": stackgan_step,
}
