"""Likelihood metrics of latent-variable models: ELBO and importance-sampled NLL (Burda et al. 2016).

The model must provide ``encode(x, y) -> (mu, logvar)`` and ``decode(z, y) -> logits`` (Bernoulli
decoder, Gaussian posterior, standard normal prior). All values are nats per image.
"""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from genlab.models.vae_losses import bernoulli_nll, gaussian_kl, gaussian_log_prob, iwae_bound


@torch.no_grad()
def importance_sampled_log_likelihood(model, x: torch.Tensor, y: torch.Tensor | None, k: int,
                                      generator: torch.Generator, chunk: int = 4096) -> torch.Tensor:
    """log p(x) estimates ``(N,)`` with ``k`` importance samples from q(z|x) each (the IWAE bound L_k).

    ``x`` ``(N, C, S, S)`` binary images; decoder calls are batched to ``chunk`` images.
    """
    mu, logvar = (t.float() for t in model.encode(x, y))
    n, d = mu.shape
    per_call = max(1, chunk // n)  # importance samples decoded per call
    log_w = []
    for start in range(0, k, per_call):
        kk = min(per_call, k - start)
        eps = torch.randn(kk, n, d, generator=generator).to(mu.device)
        z = mu + torch.exp(0.5 * logvar) * eps  # (kk, N, D)
        labels = None if y is None else y.repeat(kk)
        logits = model.decode(z.reshape(kk * n, d), labels).float()
        log_px_z = -bernoulli_nll(logits, x.repeat(kk, 1, 1, 1)).view(kk, n)
        log_pz = gaussian_log_prob(z, torch.zeros_like(z), torch.zeros_like(z))
        log_qz = gaussian_log_prob(z, mu, logvar)
        log_w.append(log_px_z + log_pz - log_qz)
    return iwae_bound(torch.cat(log_w).double())


@torch.no_grad()
def elbo_terms(model, x: torch.Tensor, y: torch.Tensor | None, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Per-image ``recon`` and ``kl`` (nats) with one posterior sample; ``-elbo = recon + kl``."""
    mu, logvar = (t.float() for t in model.encode(x, y))
    z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=generator).to(mu.device)
    recon = bernoulli_nll(model.decode(z, y).float(), x)
    return {"recon": recon, "kl": gaussian_kl(mu, logvar)}


def mean_and_stderr(values: torch.Tensor) -> tuple[float, float]:
    """Mean and standard error of the mean of a 1-D tensor."""
    v = values.double()
    return float(v.mean()), float(v.std(unbiased=True) / math.sqrt(len(v))) if len(v) > 1 else 0.0


def progress(iterable, total: int, desc: str):
    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)
