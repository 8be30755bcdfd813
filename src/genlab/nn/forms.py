"""genlab's layer forms and the PyTorch layers they stand in for.

Each form is a subclass of a PyTorch layer with the same arguments and parameters (checkpoints are
the same either way) that computes the same function faster: most only when compiling
(:class:`~genlab.nn.layers.PaddedConv2d`, :class:`~genlab.nn.layers.NearestUpsample2x`,
:class:`~genlab.nn.layers.NearestResizeConv`, :class:`~genlab.nn.activations.LeakyReLU`), the
dropout (:class:`~genlab.nn.dropout.Dropout`) and ``PaddedConv2d``'s Winograd form for fp32 3×3
layers (:mod:`genlab.nn.winograd`, equal to ~1e-5 relative) and the matrix-product weight gradients of
``PaddedConv2d`` and :class:`~genlab.nn.matmul_conv.MatmulConvTranspose2d` (:mod:`genlab.nn.matmul_conv`)
also in eager runs.
:func:`as_pytorch_layers` turns them back into PyTorch's layers: ``genlab bench``'s plain fp32 loop
runs the textbook layers that way, and ``benchmarks/compile_forms_ab.py`` times a step with and
without a form.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils import parametrize

from genlab.nn.activations import LeakyReLU
from genlab.nn.dropout import Dropout
from genlab.nn.layers import NearestResizeConv, NearestUpsample2x, PaddedConv2d
from genlab.nn.matmul_conv import MatmulConvTranspose2d

#: each form and the PyTorch layer it stands in for (same attributes and parameters)
PYTORCH_LAYER: dict[type[nn.Module], type[nn.Module]] = {
    PaddedConv2d: nn.Conv2d, NearestUpsample2x: nn.Upsample, NearestResizeConv: nn.Sequential,
    LeakyReLU: nn.LeakyReLU, Dropout: nn.Dropout, MatmulConvTranspose2d: nn.ConvTranspose2d}


def as_pytorch_layers(model: nn.Module, only: type[nn.Module] | None = None) -> int:
    """Turn every form in ``model`` (or only those of type ``only``) into its PyTorch layer, in place
    (the parameters stay as they are; a parametrized form, such as a spectral-normed one, keeps its
    parametrization); returns how many were turned."""
    if only is not None and only not in PYTORCH_LAYER:
        raise ValueError(f"as_pytorch_layers: {only.__name__} is not a layer form; "
                         f"forms: {', '.join(form.__name__ for form in PYTORCH_LAYER)}")
    count = 0
    for module in model.modules():
        if parametrize.is_parametrized(module):  # a spectral norm's class: Parametrized<form>(form), one per module
            form = type(module).__bases__[0]
            if form in PYTORCH_LAYER and only in (None, form):
                type(module).__bases__ = (PYTORCH_LAYER[form],)  # keeps the class's parametrized properties
                count += 1
        elif type(module) in PYTORCH_LAYER and only in (None, type(module)):
            module.__class__ = PYTORCH_LAYER[type(module)]
            count += 1
    return count
