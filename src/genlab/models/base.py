"""The contract between a model family and the training loop.

A family subclasses :class:`GenerativeModel`. It owns its networks, optimizers, losses and train
step; the loop (:mod:`genlab.train.loop`) knows nothing about families. The loop

* calls :meth:`GenerativeModel.train_step` once per batch, an opaque dict of tensors from the
  family's data source (the model runs its own optimizers, so a GAN can update D and G, k times
  each, in one step),
* calls :meth:`GenerativeModel.eval_step` on test batches for per-epoch test losses,
* calls :meth:`GenerativeModel.preview` each epoch and writes the grids it returns under ``samples/``,
* checkpoints ``state_dict()``, every optimizer and scheduler in :meth:`optimizers` /
  :meth:`schedulers`, and each process's :meth:`extra_state` (an image pool, a running statistic).

Randomness inside a train step comes from ``self.noise`` (a :class:`~genlab.core.noise.SharedNoise`),
which draws the noise of the whole global batch and hands each process its rows, so that training
on N processes with batch B equals training on one process with batch N·B.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

from genlab.core.hardware import resolve_precision
from genlab.errors import TrainingDiverged
from genlab.schema import Config


def adam(params, lr: float, betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.Adam:
    """``torch.optim.Adam`` with the fused implementation: one kernel over all tensors, 3.3x faster
    than the default per-tensor loop on this project's 2-core Xeon (8.4 M parameters: 45 vs 148 ms
    per step, one thread) and the same update rule; every family builds its optimizers here
    (:class:`DenseAdam`, so channels-last weights cost no copies)."""
    return DenseAdam(list(params), lr=lr, betas=tuple(betas), fused=True)


class DenseAdam(torch.optim.Adam):
    """``torch.optim.Adam`` that hands its kernels each parameter, gradient and moment as a contiguous view
    of its memory: a channels-last conv weight (O, I, k, k) as its (O, k, k, I) permutation.

    Why: torch 2.13's fused CPU kernel copies every tensor that is not contiguous into a contiguous
    clone and back at every step. For the Radford DCGAN's two networks (channels-last weights, one
    thread, EPYC-BF16) that made a step over all their parameters 9.3 ms instead of 4.2 ms
    (``python benchmarks/adam_ab.py``). Adam is
    elementwise, so the order in which the kernel walks the elements does not change a value: the
    result is bit for bit the same. The state (``exp_avg``, ``exp_avg_sq``) keeps the parameters' own
    shape and layout, so checkpoints are unchanged. Each tensor is viewed with its parameter's
    permutation, so a gradient in another layout is still paired element for element (the kernel then
    copies only that gradient). It overrides ``Adam._init_group``, a private method of torch's (2.13 is
    the version ``scripts/setup.sh`` installs); ``tests/test_optim.py`` checks it against
    ``torch.optim.Adam``."""

    def _init_group(self, group, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, *more):
        has_complex = super()._init_group(group, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps,
                                          *more)
        for i, param in enumerate(params):
            order = memory_order(param)
            if order is None:
                continue
            for tensors in (params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs):
                if i < len(tensors):  # max_exp_avg_sqs is empty without amsgrad
                    tensors[i] = tensors[i].permute(order)
        return has_complex


def memory_order(t: torch.Tensor) -> tuple[int, ...] | None:
    """The dimension order in which ``t``'s elements lie in memory (``t.permute(order)`` is contiguous), for
    a dense tensor that is not contiguous (a channels-last weight: (0, 2, 3, 1)); ``None`` for a contiguous
    one or one with gaps or overlaps."""
    if t.is_contiguous():
        return None
    order = tuple(sorted(range(t.dim()), key=lambda d: (-t.stride(d), d)))
    return order if t.permute(order).is_contiguous() else None


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """``optimizer.load_state_dict(state)``, then each moment tensor laid out like its parameter.

    Checkpoints store tensors contiguous, while a channels-last model's conv weights are not; the
    fused Adam kernel walks parameter, gradient and moments as flat memory, so a moment in another
    layout would be updated element-for-wrong-element (resume then silently differs)."""
    optimizer.load_state_dict(state)
    for param, slots in optimizer.state.items():
        for key, value in slots.items():
            if isinstance(value, torch.Tensor) and value.shape == param.shape and value.stride() != param.stride():
                slots[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


class NonFiniteLoss(TrainingDiverged):
    """A loss, or its gradient, was NaN or infinite before its optimizer step (so no weight was changed by it)."""

    def __init__(self, name: str, value: float, loss: float | None = None):
        self.name, self.value = name, value
        what = f"loss '{name}' is {value}" if loss is None else \
            f"the gradient of loss '{name}' (which is {loss:.4g}) has norm {value}"
        super().__init__(what)


class WeightSource(NamedTuple):
    """Weights a fresh run copies from another run's newest checkpoint (a frozen Stage-I generator).

    Every key ``source_prefix + k`` of that checkpoint's model (a run of ``family``) becomes this
    model's ``target_prefix + k``; shapes must match. The copied weights are part of this run's own
    checkpoints from then on, and the source (path, checkpoint, SHA-256) is recorded as ``role``.
    """

    run_dir: str
    family: str
    source_prefix: str
    target_prefix: str
    role: str


class PreviewGrid(NamedTuple):
    """One preview image grid: ``images`` float ``(N, C, H, W)`` in [0, 1], ``nrow`` images per row."""

    images: torch.Tensor
    nrow: int


class GenerativeModel(nn.Module):
    """Base class of every family.

    Subclasses set :attr:`family` (and :attr:`num_classes` if ``sample`` takes class labels as
    ``cond``) and implement :meth:`networks`, :meth:`optimizers` and :meth:`train_step`; the rest
    has defaults.
    """

    family: ClassVar[str] = ""
    #: number of classes a conditional model accepts as ``cond`` (0: unconditional)
    num_classes: int = 0
    #: drop a last partial batch (needed by BatchNorm with tiny remainders)
    drop_last: ClassVar[bool] = False

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        self.noise = None  # set by the loop: genlab.core.noise.SharedNoise
        # DDP wrappers of our networks, used for forward passes in train_step; never registered
        # as submodules so state_dict keys stay the same with and without DDP.
        self._runners: dict[str, nn.Module] = {}
        self._schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}  # set_lr_schedule
        #: the lr schedule depends on the run's length (cosine, a decay to 0): train.epochs may not change on resume
        self.schedule_spans_run = False

    # --- to implement ---------------------------------------------------------------------------
    def networks(self) -> dict[str, nn.Module]:
        """The trainable networks by name (``{"encoder": ..., "decoder": ...}``)."""
        raise NotImplementedError

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimizers by name; created once in ``__init__``."""
        raise NotImplementedError

    def schedulers(self) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        """Learning-rate schedulers by name (those made by :meth:`set_lr_schedule`; none by default)."""
        return self._schedulers

    def set_lr_schedule(self, schedule: str, total_steps: int) -> None:
        """One scheduler per optimizer for ``train.lr_schedule``, stepped once per training step.

        ``cosine`` multiplies each optimizer's own learning rate (so TTUR ratios stay) by
        ``(1 + cos(pi * step / total_steps)) / 2``: 1 at step 0, 0 at ``total_steps``
        (Loshchilov & Hutter 2017, without restarts). ``constant`` makes none.
        """
        if schedule == "constant":
            self._schedulers = {}
            return
        total = max(1, total_steps)
        self.schedule_spans_run = True

        def cosine(step: int) -> float:
            return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))

        self._schedulers = {name: torch.optim.lr_scheduler.LambdaLR(opt, cosine)
                            for name, opt in self.optimizers().items()}

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        """One optimisation step on ``batch``; returns per-image mean losses as floats."""
        raise NotImplementedError

    @torch.no_grad()
    def eval_step(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, float]:
        """Per-image mean test losses on ``batch`` (no weight changes)."""
        return {}

    @torch.no_grad()
    def sample(self, n: int, cond: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images ``(n, C, H, W)`` in [0, 1]; ``cond`` int64 ``(n,)`` class labels if conditional."""
        raise NotImplementedError

    @torch.no_grad()
    def preview(self, data: Any, generator: torch.Generator) -> dict[str, PreviewGrid]:
        """The grids the loop writes each epoch, by name: ``samples`` → ``samples/epoch_XXXX.png``,
        any other name → ``samples/epoch_XXXX_<name>.png``.

        ``data`` is the test split's data source (the training split's if there is none), for
        previews of fixed inputs (translations, captions); ``generator`` is seeded the same every
        epoch, so grids of different epochs show the same noise. The default: 100 samples in a
        10×10 grid; a conditional model gets its classes in equal consecutive blocks of 100 // classes
        images (one row per class for 10 classes; one image per class, cycling, above 100 classes).
        """
        n, classes = 100, self.num_classes
        cond = (torch.arange(n) // max(1, n // classes)) % classes if classes else None
        return {"samples": PreviewGrid(self.sample(n, cond=cond, generator=generator).float().cpu(), 10)}

    def weight_sources(self) -> list[WeightSource]:
        """Other runs whose weights a fresh run of this model starts from (none by default); the
        loop copies them once, before step 0, and never needs those runs again."""
        return []

    def extra_state(self) -> dict[str, Any]:
        """This process's state beyond weights, optimizers and RNG (tensors and JSON values), saved in
        every checkpoint for every rank so that resume is exact; e.g. CycleGAN's image pools."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned (this rank's, from the checkpoint)."""

    # --- shared machinery -----------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def run(self, name: str) -> nn.Module:
        """The network ``name`` for a training forward pass (its DDP wrapper when distributed)."""
        runner = self._runners.get(name)  # not `or`: truth-testing a compiled Sequential calls len()
        return runner if runner is not None else self.networks()[name]

    def wrap_networks(self, wrap: Callable[[str, nn.Module], nn.Module]) -> None:
        """Wrap every network's training runner (DDP, then ``torch.compile``); wrappers compose, and
        ``state_dict`` keys do not change."""
        self._runners = {name: wrap(name, self.run(name)) for name in self.networks()}

    def compile_networks(self) -> None:
        """``torch.compile`` every training runner (``train.compile``); eval and sampling stay eager.

        Static shapes (``dynamic=False``): a network that sees two batch sizes in a step (CycleGAN's
        generators) gets one graph for each instead of one graph with a symbolic batch, which a
        third size would reuse. Training has few shapes, and inductor (torch 2.13) fails to lower
        some convolution backwards and :func:`genlab.nn.layers.polyphase_conv2d`'s reshapes when
        sizes are symbolic."""
        self.wrap_networks(lambda name, net: torch.compile(net, dynamic=False))

    def autocast(self):
        """Autocast context for ``train.precision``: bf16 autocast, or none for fp32 (``auto``: the
        hardware's choice, :func:`genlab.core.hardware.resolve_precision`; training runs record it)."""
        if resolve_precision(self.config.train.precision, self.device)[0] == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def step_optimizer(self, name: str, loss: torch.Tensor) -> None:
        """Backward ``loss`` and step optimizer ``name``; refuses a non-finite loss, or a loss whose gradient
        is not finite (finite losses can have NaN gradients, e.g. bf16 overflow), before touching weights."""
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteLoss(name, value)
        optimizer = self.optimizers()[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        norm = float(torch.nn.utils.get_total_norm(grads, foreach=True)) if grads else 0.0
        if not math.isfinite(norm):
            optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLoss(name, norm, loss=value)
        optimizer.step()

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per network (trainable and not)."""
        return {name: sum(p.numel() for p in net.parameters()) for name, net in self.networks().items()}


