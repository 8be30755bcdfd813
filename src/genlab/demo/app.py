"""The web demo: one Gradio tab per run directory, with the sections its family's abilities allow.

* ``sample``: a grid of samples (number of images, seed and, for conditional models, a class label);
  the same seed gives the same pixels as ``genlab sample`` with that seed.
* ``reconstruct`` (VAE, CVAE): an uploaded image as the model sees it (checked and prepared by
  :mod:`genlab.demo.uploads`) next to its reconstruction.
* ``latent`` (VAE, CVAE, GAN): the latent explorer and the interpolation between two seeds
  (:mod:`genlab.demo.sections`, :mod:`genlab.demo.latent`).
* ``translate`` (CycleGAN): an uploaded image or an example of the run's test split
  (:mod:`genlab.demo.examples`), its translation and cycle reconstruction, either direction.
* ``text`` (StackGAN): a caption (or an example caption), Stage-I and Stage-II images (:mod:`genlab.demo.text`).

Offline: the page loads nothing but the demo's own server. Gradio's usage analytics and version
check (``api.gradio.app``) and Hugging Face Hub telemetry (``huggingface.co``) are turned off before
Gradio is imported (:func:`require_gradio`), and the theme names system fonts only
(:func:`offline_theme`), so no font is fetched either.

The work is done by plain functions on tensors and ``uint8`` arrays (:func:`sample_grid`,
:func:`reconstruct`, and the UI callbacks :func:`sample_callback` / :func:`reconstruct_callback`,
which turn a :class:`~genlab.errors.GenlabError` into a status message instead of a traceback), so
they are tested without a server. Gradio is imported only by :func:`build_demo` and
:func:`launch` (:func:`require_gradio`), so this module imports without the ``demo`` extra.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import logging
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab.data.images import IMAGE_SUFFIXES
from genlab.demo.examples import translation_examples
from genlab.demo.runs import (  # noqa: F401  (DISPLAY_MIN_SIDE, check_run_dirs: part of this module's API)
    DISPLAY_MIN_SIDE,
    MAX_SEED,
    DemoRun,
    check_run_dirs,
    class_label,
    enlarge,
    load_demo_runs,
    to_display,
    whole_number,
)
from genlab.demo.sections import interpolation_section, latent_section, output_image, text_section
from genlab.demo.uploads import (
    BYTES_PER_MB,
    DEFAULT_MAX_UPLOAD_MB,
    load_upload,
    max_upload_bytes,
)
from genlab.errors import GenlabError
from genlab.viz.grids import grid_to_uint8, make_grid

log = logging.getLogger("genlab.demo")

#: Most images one sample request may ask for (bounds the CPU time of one click).
MAX_SAMPLES = 256
#: What users of a computer without the extra are told to run.
INSTALL_HINT = "pip install 'genlab[demo]'"
#: Gradio's ``delete_cache`` (every 600 s, files older than 3600 s; everything at shutdown)
UPLOAD_CACHE_CLEANUP = (600, 3600)
#: font stacks of :func:`offline_theme`: fonts of the computer only, never a web font
SYSTEM_FONTS = ("DejaVu Sans", "Liberation Sans", "Arial", "ui-sans-serif", "system-ui", "sans-serif")
SYSTEM_MONO_FONTS = ("DejaVu Sans Mono", "Liberation Mono", "ui-monospace", "Consolas", "monospace")


# --- the work, on tensors and arrays ---------------------------------------------------------------


def sample_grid(run: DemoRun, n: int, seed: int, label: int | None = None) -> np.ndarray:
    """A grid of ``n`` samples, exactly the pixels ``genlab sample RUN --n n --seed seed [--label]`` writes.

    Args:
        run: the loaded run.
        n: number of images, 1..:data:`MAX_SAMPLES`.
        seed: seed of the latent noise (a ``torch.Generator``), 0..:data:`MAX_SEED`.
        label: class of every image for a conditional model; ``None`` (or negative) cycles
            through the classes, as ``genlab sample`` without ``--label`` does.

    Returns:
        ``uint8`` grid ``(H, W)`` (grey) or ``(H, W, 3)`` with ``ceil(sqrt(n))`` images per row,
        2 pixels of white padding between and around them.

    Raises:
        GenlabError: ``n``, ``seed`` or ``label`` is out of range, or a label was given to an
            unconditional model.
    """
    n = whole_number(n, "number of images", 1, MAX_SAMPLES)
    seed = whole_number(seed, "seed", 0, MAX_SEED)
    label = class_label(run, label, required=False)
    cond = None if label is None else torch.full((n,), label, dtype=torch.int64)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        images = run.model.sample(n, cond=cond, generator=generator).float()
    return grid_to_uint8(make_grid(images, nrow=math.ceil(math.sqrt(n))))


def reconstruct(run: DemoRun, path: str | Path, *, label: int | None = None,
                max_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * BYTES_PER_MB), invert: bool = False,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The uploaded image as the model sees it, and its reconstruction through the posterior mean.

    The file is checked and prepared by :func:`genlab.demo.uploads.load_upload` (with the run's
    binarisation, seeded by ``seed``); the reconstruction is the decoder's Bernoulli mean
    ``sigmoid(decode(mu))`` at the encoder's mean ``mu``, as in the run's ``reconstructions.png``.

    Args:
        run: a VAE or CVAE run.
        path: the uploaded file.
        label: the class of the image; required for a CVAE, refused for a VAE.
        max_bytes: largest accepted upload in bytes.
        invert: invert the grey levels first (a dark drawing on light paper, for MNIST models).
        seed: seed of the dynamic binarisation, 0..:data:`MAX_SEED`.

    Returns:
        ``(seen, reconstruction)``, each ``uint8`` ``(S, S)`` (grey) or ``(S, S, 3)``, where ``S``
        is the run's ``data.image_size``.

    Raises:
        GenlabError: the run cannot reconstruct (a GAN), the label is missing or out of range, or
            the upload is refused (too large, empty, not an image, truncated, ...; the message
            names the file).
    """
    if not run.can_reconstruct:
        raise GenlabError(f"the {run.model.family} model of {run.title} has no encoder: it cannot reconstruct images")
    label = class_label(run, label, required=bool(run.num_classes))
    seed = whole_number(seed, "seed", 0, MAX_SEED)
    x = load_upload(path, run.config.data, max_bytes=max_bytes, invert=invert, seed=seed)  # (1, C, S, S)
    y = None if label is None else torch.tensor([label], dtype=torch.int64)
    recon = run.model.reconstruct(x, y).cpu()
    if run.config.data.value_range == "symmetric":  # show what the model sees on the usual [0, 1] scale
        x = (x + 1.0) / 2.0
    return to_display(x), to_display(recon)


# --- UI callbacks: errors become a status message ----------------------------------------------------


def sample_callback(run: DemoRun, n: Any, seed: Any, label: Any = None) -> tuple[np.ndarray | None, str]:
    """``(enlarged grid or None, status text)`` for the Sample button; a GenlabError becomes the status."""
    try:
        grid = sample_grid(run, n, seed, label)
    except GenlabError as exc:
        return None, f"error: {exc}"
    shown_label = class_label(run, label, required=False)
    what = "" if shown_label is None else f" of class {shown_label}"
    return enlarge(grid), f"{int(n)} samples{what}, seed {int(seed)}"


def reconstruct_callback(run: DemoRun, path: str | None, label: Any = None, invert: bool = False,
                         seed: Any = 0, *, max_bytes: int) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """``(seen, reconstruction, status)`` for the Reconstruct button, both enlarged; errors become the status."""
    if not path:
        return None, None, "upload an image first"
    try:
        seen, recon = reconstruct(run, path, label=label, max_bytes=max_bytes, invert=bool(invert), seed=seed)
    except GenlabError as exc:
        return None, None, f"error: {exc}"
    return enlarge(seen), enlarge(recon), f"{Path(path).name}: shown at {seen.shape[1]}×{seen.shape[0]} as the model sees it"


def translate_upload(run: DemoRun, path: str | Path, direction: str, *,
                     max_bytes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(input, translation, cycle reconstruction)`` of an uploaded image, each uint8 at the run's
    ``data.image_size``: the upload as the source domain's training images were prepared, ``G(x)``
    and ``F(G(x))``. ``direction``: ``AtoB`` or ``BtoA``.

    Raises:
        GenlabError: the run cannot translate, the direction is unknown, or the upload is refused
            (the message names the file).
    """
    if not run.can("translate"):
        raise GenlabError(f"the {run.model.family} model of {run.title} cannot translate images")
    if direction not in ("AtoB", "BtoA"):
        raise GenlabError(f"direction: got {direction!r}; allowed: AtoB, BtoA")
    data = run.config.data
    channels = data.source_channels(direction)
    x = load_upload(path, dataclasses.replace(data, channels=channels, binarize="none"), max_bytes=max_bytes)
    if data.value_range == "symmetric":
        x = (x + 1.0) / 2.0
    there, back = run.model.cycle(x, direction)
    return to_display(x), to_display(there.cpu()), to_display(back.cpu())


def translate_callback(run: DemoRun, path: str | None, direction: str, *, max_bytes: int):
    """``(input, translation, reconstruction, status)`` for the Translate button; errors become the status."""
    if not path:
        return None, None, None, "upload an image first"
    try:
        shown = translate_upload(run, path, direction, max_bytes=max_bytes)
    except GenlabError as exc:
        return None, None, None, f"error: {exc}"
    return (*(enlarge(image) for image in shown), f"{Path(path).name}: {direction} and back")


# --- Gradio ----------------------------------------------------------------------------------------


def require_gradio():
    """Import Gradio (>= 6), or raise a GenlabError saying how to install the demo extra."""
    missing = GenlabError(f"the web demo needs Gradio, which is not installed: {INSTALL_HINT}")
    # Read by Gradio and huggingface_hub when they would phone home: Gradio's usage analytics and version
    # check (api.gradio.app) and the Hub's telemetry (huggingface.co). The demo contacts no one.
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    try:
        import gradio
    except ImportError:
        raise missing from None
    version = getattr(gradio, "__version__", None)
    if version is None:  # a folder named gradio/ in the working directory (Gradio's own cache, say)
        raise missing
    major = str(version).split(".")[0]
    if not major.isdigit() or int(major) < 6:
        raise GenlabError(f"the web demo needs Gradio 6, found {version}: {INSTALL_HINT}")
    return gradio


def offline_theme(gr):
    """Gradio's default theme with system fonts only (DejaVu, Liberation, then the browser's own), so the
    page requests no web font; pass it to ``launch(theme=...)`` (Gradio 6 takes the theme there)."""
    return gr.themes.Default(font=list(SYSTEM_FONTS), font_mono=list(SYSTEM_MONO_FONTS))


def build_demo(run_dirs: Sequence[str | Path], max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB):
    """A ``gradio.Blocks`` with one tab per run (loads every run's newest checkpoint on the CPU).

    Args:
        run_dirs: run directories written by ``genlab train``.
        max_upload_mb: largest accepted upload in MB (1 MB = 1,048,576 bytes), checked before decoding.

    Raises:
        GenlabError: Gradio is not installed, a run directory is missing or has no checkpoint,
            or ``max_upload_mb`` is not a number > 0.
    """
    max_bytes = max_upload_bytes(max_upload_mb)
    check_run_dirs(run_dirs)
    gr = require_gradio()
    runs = load_demo_runs(run_dirs)
    # delete_cache: uploads and generated files older than an hour go every 10 minutes, and all of
    # them when the server stops (Gradio otherwise leaves them in its temp folder)
    with gr.Blocks(title="genlab demo", analytics_enabled=False, delete_cache=UPLOAD_CACHE_CLEANUP) as demo:
        gr.Markdown("# genlab demo\nOne tab per trained run: samples, the latent space, reconstructions, "
                    "translations or text to image, as the run's model family allows.")
        with gr.Tabs():
            for index, run in enumerate(runs, start=1):
                with gr.Tab(run.title):
                    _run_tab(gr, run, index, max_bytes, max_upload_mb)
    # Bound the waiting line: one request at a time per button, at most 32 waiting.
    demo.queue(max_size=32, default_concurrency_limit=1)
    return demo


def _label_choices(run: DemoRun, with_cycle: bool) -> list[tuple[str, int]]:
    cycle = [("every class in turn", -1)] if with_cycle else []
    return cycle + [(str(k), k) for k in range(run.num_classes)]


def _run_tab(gr, run: DemoRun, index: int, max_bytes: int, max_upload_mb: float) -> None:
    """The widgets of the ``index``-th run's tab, by its family's abilities; API endpoints ``/run<index>_<what>``."""
    gr.Markdown(run.describe())
    if run.can("translate"):
        _translate_section(gr, run, index, max_bytes, max_upload_mb)
    if run.can("text"):
        text_section(gr, run, index)
    if not run.can("sample"):
        return
    gr.Markdown("### Samples")
    with gr.Row():
        n = gr.Slider(1, MAX_SAMPLES, value=16, step=1, label="number of images", elem_id=f"run{index}_sample_n")
        seed = gr.Number(value=0, precision=0, minimum=0, label="seed (same seed, same images)",
                         elem_id=f"run{index}_sample_seed")
        label = (gr.Dropdown(_label_choices(run, with_cycle=True), value=-1, label="class label",
                             elem_id=f"run{index}_sample_label")
                 if run.num_classes else None)
    sample_button = gr.Button("Sample", variant="primary", elem_id=f"run{index}_sample_button")
    grid = output_image(gr, label="samples", elem_id=f"run{index}_sample_image")
    sample_status = gr.Textbox(label="status", interactive=False, max_lines=3, elem_id=f"run{index}_sample_status")
    inputs = [n, seed] + ([label] if label is not None else [])
    sample_button.click(functools.partial(sample_callback, run), inputs, [grid, sample_status],
                        api_name=f"run{index}_sample")
    if run.can_reconstruct:
        _reconstruct_section(gr, run, index, max_bytes, max_upload_mb)
    if run.can("latent"):
        latent_section(gr, run, index)
        interpolation_section(gr, run, index)


def _reconstruct_section(gr, run: DemoRun, index: int, max_bytes: int, max_upload_mb: float) -> None:
    """Upload an image, see it as the model sees it and its reconstruction; endpoint ``/run<index>_reconstruct``."""
    gr.Markdown(f"### Reconstruct an image\nAt most {max_upload_mb:g} MB; it is center-cropped, resized to "
                f"{run.config.data.image_size}×{run.config.data.image_size} and converted as the training "
                "images were.")
    with gr.Row():
        upload = gr.File(label="image", file_types=list(IMAGE_SUFFIXES), type="filepath",
                         elem_id=f"run{index}_reconstruct_upload")
        with gr.Column():
            rec_label = (gr.Dropdown(_label_choices(run, with_cycle=False), value=0, label="class label")
                         if run.num_classes else None)
            invert = gr.Checkbox(value=False, label="invert grey levels (dark drawing on light background)")
            rec_seed = gr.Number(value=0, precision=0, minimum=0, label="seed of the binarisation"
                                 if run.config.data.binarize == "dynamic" else "seed (unused: no binarisation)")
            rec_button = gr.Button("Reconstruct", variant="primary", elem_id=f"run{index}_reconstruct_button")
    with gr.Row():
        seen = output_image(gr, label="as the model sees it", elem_id=f"run{index}_reconstruct_seen")
        recon = output_image(gr, label="reconstruction", elem_id=f"run{index}_reconstruct_image")
    rec_status = gr.Textbox(label="status", interactive=False, max_lines=3, elem_id=f"run{index}_reconstruct_status")
    callback = functools.partial(_reconstruct_event, run, max_bytes, rec_label is not None)
    rec_inputs = [upload] + ([rec_label] if rec_label is not None else []) + [invert, rec_seed]
    rec_button.click(callback, rec_inputs, [seen, recon, rec_status], api_name=f"run{index}_reconstruct")


def _translate_section(gr, run: DemoRun, index: int, max_bytes: int, max_upload_mb: float) -> None:
    """Upload an image (or pick an example of the run's test split), pick a direction, see G(x) and F(G(x));
    endpoint ``/run<index>_translate``."""
    gr.Markdown(f"### Translate an image\nAt most {max_upload_mb:g} MB; it is center-cropped and resized to "
                f"{run.config.data.image_size}×{run.config.data.image_size}.")
    with gr.Row():
        upload = gr.File(label="image", file_types=list(IMAGE_SUFFIXES), type="filepath",
                         elem_id=f"run{index}_translate_upload")
        with gr.Column():
            direction = gr.Radio(["AtoB", "BtoA"], value="AtoB", label="direction", elem_id=f"run{index}_translate_direction")
            button = gr.Button("Translate", variant="primary", elem_id=f"run{index}_translate_button")
    if "examples_dir" not in run.cache:  # kept as long as the run (Gradio also copies them into its cache)
        run.cache["examples_dir"] = tempfile.TemporaryDirectory(prefix="genlab-demo-examples-")
    found = translation_examples(run, Path(run.cache["examples_dir"].name))
    if found:
        gr.Examples([[str(e.path), e.direction] for e in found], [upload, direction],
                    example_labels=[e.label for e in found], label="examples from the run's data (click one, then Translate)")
    with gr.Row():
        shown = [output_image(gr, label=label, elem_id=f"run{index}_translate_{key}")
                 for label, key in (("input", "input"), ("translation G(x)", "image"), ("reconstruction F(G(x))", "cycle"))]
    status = gr.Textbox(label="status", interactive=False, max_lines=3, elem_id=f"run{index}_translate_status")
    button.click(functools.partial(translate_callback, run, max_bytes=max_bytes), [upload, direction],
                 [*shown, status], api_name=f"run{index}_translate")


def _reconstruct_event(run: DemoRun, max_bytes: int, has_label: bool, path, *args):
    """Adapt the widgets' values (``path, [label,] invert, seed``) to :func:`reconstruct_callback`."""
    label, (invert, seed) = (args[0], args[1:]) if has_label else (None, args)
    return reconstruct_callback(run, path, label, invert, seed, max_bytes=max_bytes)


def is_loopback(host: str) -> bool:
    """True if ``host`` is ``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def launch(run_dirs: Sequence[str | Path], host: str = "127.0.0.1", port: int = 7860,
           max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB) -> None:
    """Serve the demo at ``http://host:port`` until interrupted.

    ``host`` defaults to the loopback address, so only this machine can reach the demo; any other
    address is logged as a warning (there is no login). Uploads are limited twice: by Gradio's
    ``max_file_size`` (larger requests are refused by the server) and by
    :func:`genlab.demo.uploads.check_upload_size` before decoding.

    Raises:
        GenlabError: see :func:`build_demo`; also a port outside 1..65535.
    """
    max_bytes = max_upload_bytes(max_upload_mb)
    if not 1 <= int(port) <= 65535:
        raise GenlabError(f"--port: got {port}; allowed: 1..65535")
    demo = build_demo(run_dirs, max_upload_mb)
    if not is_loopback(host):
        log.warning("warning: the demo listens on %s, so other machines that can reach this one can use it "
                    "(run the models, upload files); it has no login. Use --host 127.0.0.1 to keep it local.",
                    host)
    log.info("genlab demo on http://%s:%d (uploads up to %g MB); Ctrl+C stops it", host, port, max_upload_mb)
    # quiet: Gradio's banner suggests share=True (a public tunnel); the line above says where the demo is.
    demo.launch(server_name=host, server_port=int(port), max_file_size=max_bytes, share=False,
                inbrowser=False, show_error=False, ssr_mode=False, quiet=True, theme=offline_theme(require_gradio()))
