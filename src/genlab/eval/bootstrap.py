"""Bootstrap standard errors for FID margins on small test sets (hundreds of images).

A FID is one number per pair of sets, so "translation beats its input" needs a spread from
resampling the test set: draw the test images with replacement, recompute both FIDs on the same
draw, and take the standard deviation of their difference (Efron & Tibshirani 1993, ch. 6).

Each resample must be cheap. For ``N`` and ``M`` feature rows of dimension ``D`` with N, M < D
(387 test emoji, D = 2048), the covariances have rank below N, and every term of FID is a function
of Gram matrices of the rows:

* ``|mu_r - mu_f|^2`` = mean(G_rr) − 2 mean(G_rf) + mean(G_ff);
* ``Tr S_r`` = (Σ‖x_i − x̄‖²)/(N − 1) from the diagonal and the mean of G_rr;
* ``Tr (S_r S_f)^(1/2)`` = the nuclear norm of ``A Bᵀ`` with ``A``, ``B`` the centred rows scaled
  by ``1/sqrt(N − 1)``, ``1/sqrt(M − 1)``: the non-zero eigenvalues of ``AᵀA BᵀB`` are those of
  ``(A Bᵀ)(A Bᵀ)ᵀ``, the squared singular values of ``A Bᵀ`` (N × M).

So one resample indexes precomputed Grams and takes the singular values of an N × M matrix,
milliseconds instead of the seconds of a D × D matrix square root, and equals the full FID
(:func:`genlab.eval.gan_metrics.frechet_distance`) to float64 rounding.
"""

from __future__ import annotations

import torch


def _centred(gram: torch.Tensor) -> torch.Tensor:
    """Double-centre a Gram block ``(N, M)``: the products of the rows minus their set means."""
    return gram - gram.mean(0, keepdim=True) - gram.mean(1, keepdim=True) + gram.mean()


def _spread(gram: torch.Tensor) -> torch.Tensor:
    """``Σ‖x_i − x̄‖²`` of a set from its Gram matrix ``(N, N)``."""
    return gram.diagonal().sum() - len(gram) * gram.mean()


def fid_from_grams(g_rr: torch.Tensor, g_ff: torch.Tensor, g_rf: torch.Tensor) -> float:
    """FID from the Gram matrices of real rows ``(N, N)``, fake rows ``(M, M)`` and their products ``(N, M)``."""
    n, m = g_rf.shape
    mean_term = g_rr.mean() - 2 * g_rf.mean() + g_ff.mean()
    trace_r, trace_f = _spread(g_rr) / (n - 1), _spread(g_ff) / (m - 1)
    cross = torch.linalg.svdvals(_centred(g_rf) / ((n - 1) * (m - 1)) ** 0.5).sum()
    return float(mean_term + trace_r + trace_f - 2 * cross)


def fid_margin_bootstrap(target: torch.Tensor, translated: torch.Tensor, baseline: torch.Tensor, *,
                         paired: bool, resamples: int = 200, seed: int = 0) -> dict[str, float]:
    """FID(target, baseline) − FID(target, translated) and its bootstrap standard error.

    ``target`` ``(N, D)``: features of the real target set; ``translated`` and ``baseline``
    ``(M, D)``: features of the translations and of their untranslated inputs, row i of both from
    the same source image (resampled together). ``paired``: row i of ``target`` shows the same
    subject as row i of the others (aligned domains, N = M), so one index draw serves all three;
    otherwise the target rows are drawn independently. Positive margin: the translation is closer to
    the target set than its input. Returns ``{"gain", "gain_se", "resamples"}``; the point estimate
    is on the full sets, the standard error the std of the ``resamples`` bootstrap margins.
    """
    if paired and len(target) != len(translated):
        raise ValueError(f"paired sets need equal sizes; got {len(target)} target and {len(translated)} translated rows")
    if len(translated) != len(baseline):
        raise ValueError(f"translated ({len(translated)}) and baseline ({len(baseline)}) rows must pair up")
    t, y, x = (f.double() for f in (target, translated, baseline))
    grams = {"tt": t @ t.T, "yy": y @ y.T, "xx": x @ x.T, "ty": t @ y.T, "tx": t @ x.T}

    def margin(it: torch.Tensor, iy: torch.Tensor) -> float:
        tt = grams["tt"][it][:, it]
        return (fid_from_grams(tt, grams["xx"][iy][:, iy], grams["tx"][it][:, iy])
                - fid_from_grams(tt, grams["yy"][iy][:, iy], grams["ty"][it][:, iy]))

    generator = torch.Generator().manual_seed(seed)
    n, m = len(t), len(y)
    draws = []
    for _ in range(resamples):
        iy = torch.randint(m, (m,), generator=generator)
        it = iy if paired else torch.randint(n, (n,), generator=generator)
        draws.append(margin(it, iy))
    full_t, full_y = torch.arange(n), torch.arange(m)
    return {"gain": margin(full_t, full_y), "gain_se": float(torch.tensor(draws).std()), "resamples": resamples}
