"""The web demo: upload checks, sample and reconstruction callbacks, the Gradio app and `genlab demo`."""

from __future__ import annotations

import logging
import os
import socket
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from conftest import CONFIGS, tiny_config
from genlab.cli import app, main
from genlab.config import DataConfig, load_config
from genlab.demo import app as demo_app
from genlab.demo.uploads import BYTES_PER_MB, UploadError, load_upload, max_upload_bytes
from genlab.errors import GenlabError, ImageDecodeError
from genlab.train.loop import train

TINY_GAN = ["data.limit=64", "data.test_limit=64", "train.batch_size=16", "train.progress=false", "model.width=8",
            "eval.batch_size=64", "train.epochs=1"]


# --- tiny runs, trained once for the module (a few seconds each) ----------------------------------


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("runs")
    return {
        "vae": train(tiny_config("vae-mnist", "train.epochs=1"), root / "vae"),
        "cvae": train(tiny_config("cvae-mnist", "train.epochs=1"), root / "cvae"),
        "gan": train(load_config(CONFIGS / "dcgan-mnist.yaml", TINY_GAN), root / "gan"),
    }


@pytest.fixture(scope="module")
def runs(run_dirs):
    loaded = demo_app.load_demo_runs([run_dirs["vae"], run_dirs["cvae"], run_dirs["gan"]])
    return dict(zip(["vae", "cvae", "gan"], loaded))


def write_png(path, size=(50, 40), color=None, seed=0):
    """An RGB PNG of ``size`` (width, height): one colour, or noise."""
    if color is None:
        pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    else:
        pixels = np.full((size[1], size[0], 3), color, dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="PNG")
    return path


# --- uploads ----------------------------------------------------------------------------------------


def test_oversized_upload_is_refused_before_decoding_naming_size_and_limit(tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(os.urandom(2 * BYTES_PER_MB))  # not an image either: only the size check can name the limit
    with pytest.raises(UploadError) as caught:
        load_upload(big, DataConfig(), max_bytes=max_upload_bytes(1))
    message = str(caught.value)
    assert message.startswith("big.png: ") and "2.0 MB (2,097,152 bytes)" in message
    assert "upload limit of 1.0 MB (1,048,576 bytes)" in message
    assert str(tmp_path) not in message  # the server's temporary folder is not shown to users
    assert isinstance(caught.value, GenlabError)
    assert max_upload_bytes(10) == 10 * 1024 * 1024
    with pytest.raises(GenlabError, match="> 0"):
        max_upload_bytes(0)


@pytest.mark.parametrize("kind, reason", [
    ("empty", "empty file (0 bytes)"),
    ("text", "not a recognised image format"),
    ("truncated", "truncated"),
])
def test_bad_uploads_are_refused_with_the_file_name(tmp_path, kind, reason):
    path = tmp_path / f"{kind}.png"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is a text file renamed to .png\n")
    else:
        data = write_png(tmp_path / "full.png", size=(64, 64)).read_bytes()
        path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError) as caught:
        load_upload(path, DataConfig())
    assert str(caught.value).startswith(f"{kind}.png: ") and reason in str(caught.value)


def test_rgb_png_of_another_size_becomes_the_runs_input(tmp_path, run_dirs, runs):
    red = write_png(tmp_path / "red.png", size=(50, 40), color=(255, 0, 0))
    grey = round(0.299 * 255) / 255  # ITU-R 601 luma of pure red, as Pillow converts RGB to L

    vae_data = runs["vae"].config.data  # MNIST: 1 channel, 28x28, [0, 1], dynamically binarised
    x = load_upload(red, vae_data, seed=3)
    assert x.shape == (1, 1, 28, 28) and x.dtype == torch.float32
    assert set(x.unique().tolist()) <= {0.0, 1.0}  # binarised like the training batches
    assert torch.equal(x, load_upload(red, vae_data, seed=3))  # same seed, same input
    assert 0.1 < x.mean() < 0.5  # Bernoulli(0.298)

    plain = load_upload(red, DataConfig(binarize="none"))
    assert plain.shape == (1, 1, 28, 28) and torch.allclose(plain, torch.full_like(plain, grey))
    inverted = load_upload(red, DataConfig(binarize="none"), invert=True)
    assert torch.allclose(inverted, 1 - plain)

    gan_data = runs["gan"].config.data  # DCGAN: 32x32, [-1, 1]
    x = load_upload(red, gan_data)
    assert x.shape == (1, 1, 32, 32) and torch.allclose(x, torch.full_like(x, 2 * grey - 1))
    rgb = load_upload(red, DataConfig(channels=3, image_size=16, value_range="symmetric"))
    assert rgb.shape == (1, 3, 16, 16)
    assert torch.allclose(rgb[0, :, 0, 0], torch.tensor([1.0, -1.0, -1.0]))


# --- callbacks ----------------------------------------------------------------------------------------


def test_sample_grid_is_deterministic_and_equals_genlab_sample(tmp_path, run_dirs, runs):
    vae = runs["vae"]
    a, b, c = (demo_app.sample_grid(vae, 16, seed) for seed in (1, 1, 2))
    assert a.dtype == np.uint8 and a.shape == (4 * 30 + 2, 4 * 30 + 2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)

    out = tmp_path / "cli.png"
    result = CliRunner().invoke(app, ["sample", str(run_dirs["vae"]), "--n", "16", "--seed", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert np.array_equal(np.asarray(Image.open(out)), a)  # the same pixels as `genlab sample`

    image, status = demo_app.sample_callback(vae, 16, 1)
    assert np.array_equal(image[::3, ::3], a) and status == "16 samples, seed 1"  # enlarged 3x for display
    cvae_one, _ = demo_app.sample_callback(runs["cvae"], 4, 0, 3)
    cvae_two, _ = demo_app.sample_callback(runs["cvae"], 4, 0, 3)
    assert np.array_equal(cvae_one, cvae_two)
    gan = demo_app.sample_grid(runs["gan"], 9, 5)
    assert gan.shape == (3 * 34 + 2, 3 * 34 + 2) and np.array_equal(gan, demo_app.sample_grid(runs["gan"], 9, 5))


def test_sample_callback_reports_bad_inputs_as_a_message(runs):
    for args, words in [((runs["vae"], 0, 1), "number of images"),
                        ((runs["vae"], 4, -1), "seed"),
                        ((runs["vae"], 4, None), "seed"),
                        ((runs["vae"], 4, 2.5), "seed"),
                        ((runs["vae"], 4, 2**63), "seed"),
                        ((runs["vae"], 4, 0, 3), "unconditional"),
                        ((runs["cvae"], 4, 0, 10), "0 to 9")]:
        image, status = demo_app.sample_callback(*args)
        assert image is None and status.startswith("error: ") and words in status, (args, status)


def test_reconstruction_has_the_runs_shape_for_vae_and_cvae(tmp_path, runs):
    photo = write_png(tmp_path / "photo.png", size=(90, 60))
    seen, recon = demo_app.reconstruct(runs["vae"], photo)
    assert seen.shape == recon.shape == (28, 28) and seen.dtype == recon.dtype == np.uint8
    seen_c, recon_c = demo_app.reconstruct(runs["cvae"], photo, label=3)
    assert seen_c.shape == recon_c.shape == (28, 28)
    assert not np.array_equal(recon_c, demo_app.reconstruct(runs["cvae"], photo, label=7)[1])  # the label matters

    with pytest.raises(GenlabError, match="needs a class label"):
        demo_app.reconstruct(runs["cvae"], photo)
    with pytest.raises(GenlabError, match="cannot reconstruct"):
        demo_app.reconstruct(runs["gan"], photo)

    shown, shown_recon, status = demo_app.reconstruct_callback(runs["cvae"], str(photo), 3, False, 0,
                                                               max_bytes=BYTES_PER_MB)
    assert shown.shape == shown_recon.shape == (280, 280) and status.startswith("photo.png: ")


def test_reconstruction_callback_shows_upload_errors_as_a_message(tmp_path, runs):
    notes = tmp_path / "notes.png"
    notes.write_text("not an image")
    seen, recon, status = demo_app.reconstruct_callback(runs["vae"], str(notes), max_bytes=BYTES_PER_MB)
    assert seen is None and recon is None
    assert status.startswith("error: notes.png: not a recognised image format") and "Traceback" not in status
    big = write_png(tmp_path / "large.png", size=(64, 64))
    _, _, status = demo_app.reconstruct_callback(runs["vae"], str(big), max_bytes=1000)
    assert status.startswith("error: large.png: file is") and "upload limit of" in status and "1,000 bytes" in status
    assert demo_app.reconstruct_callback(runs["vae"], None, max_bytes=1000)[2] == "upload an image first"


# --- the Gradio app -------------------------------------------------------------------------------


def _component_labels(demo):
    return [(c["type"], c.get("props", {}).get("label") or c.get("props", {}).get("value"))
            for c in demo.config["components"]]


def test_build_demo_makes_one_tab_per_run(run_dirs):
    import gradio as gr

    demo = demo_app.build_demo([run_dirs["vae"], run_dirs["gan"]], max_upload_mb=5)
    assert isinstance(demo, gr.Blocks)
    labels = _component_labels(demo)
    assert [name for kind, name in labels if kind == "tabitem"] == ["vae", "gan"]
    # VAE: samples, reconstruction, latent explorer (no button) and interpolation; GAN: no upload
    assert [name for kind, name in labels if kind == "button"] == ["Sample", "Reconstruct", "Interpolate", "Sample",
                                                                   "Interpolate"]
    assert ("slider", "z1") in labels and ("slider", "z2") in labels and ("image", "decoded image") in labels
    uploads = [c for c in demo.config["components"] if c["type"] == "file"]
    assert len(uploads) == 1 and ".png" in uploads[0]["props"]["file_types"]
    assert demo.delete_cache == (600, 3600)  # Gradio removes old uploads, and all of them at shutdown

    cvae = demo_app.build_demo([run_dirs["cvae"]])
    assert ("dropdown", "class label") in _component_labels(cvae)


def test_missing_gradio_or_run_dir_is_a_clear_error(tmp_path, run_dirs, monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` now raises ImportError
    with pytest.raises(GenlabError, match="run directory not found"):  # checked before Gradio is needed
        demo_app.build_demo([tmp_path / "missing"])
    with pytest.raises(GenlabError, match=r"pip install 'genlab\[demo\]'"):
        demo_app.build_demo([run_dirs["vae"]])
    # A folder named gradio/ in the working directory (Gradio's cache) imports as an empty namespace package.
    monkeypatch.setitem(sys.modules, "gradio", types.ModuleType("gradio"))
    with pytest.raises(GenlabError, match="not installed"):
        demo_app.require_gradio()


def run_main(monkeypatch, capsys, *args):
    """``genlab ARGS`` through the console script's main(); returns (exit code, stderr)."""
    log = logging.getLogger("genlab")
    monkeypatch.setattr(log, "handlers", [])  # main() adds a stderr handler: keep it to this test
    monkeypatch.setattr(log, "level", log.level)
    monkeypatch.setattr(sys, "argv", ["genlab", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    return exited.value.code, capsys.readouterr().err


def test_cli_demo_refuses_a_missing_run_dir_and_a_missing_gradio(tmp_path, run_dirs, monkeypatch, capsys):
    code, err = run_main(monkeypatch, capsys, "demo", str(run_dirs["vae"]), str(tmp_path / "no-such-run"))
    assert code == 2 and f"run directory not found: {tmp_path / 'no-such-run'}" in err and "Traceback" not in err
    monkeypatch.setitem(sys.modules, "gradio", None)
    code, err = run_main(monkeypatch, capsys, "demo", str(run_dirs["vae"]))
    assert code == 2 and "pip install 'genlab[demo]'" in err

    result = CliRunner().invoke(app, ["demo", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--max-upload-mb", "127.0.0.1", "7860"):
        assert option in result.output


@pytest.fixture
def launched(monkeypatch):
    """Replace ``gradio.Blocks.launch`` by a recorder of its keyword arguments."""
    import gradio as gr

    calls = []
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: calls.append(kwargs))
    return calls


def test_launch_defaults_to_localhost_with_gradios_upload_limit(run_dirs, launched, monkeypatch, capsys, caplog):
    caplog.set_level(logging.WARNING, logger="genlab.demo")
    demo_app.launch([run_dirs["vae"]])
    code, err = run_main(monkeypatch, capsys, "demo", str(run_dirs["gan"]))
    assert code == 0, err
    assert len(launched) == 2
    for kwargs in launched:
        assert kwargs["server_name"] == "127.0.0.1" and kwargs["server_port"] == 7860
        assert kwargs["max_file_size"] == 10 * 1024 * 1024 and kwargs["share"] is False
    assert not caplog.records  # no warning on the loopback address

    demo_app.launch([run_dirs["gan"]], host="0.0.0.0", port=8000, max_upload_mb=2)
    assert launched[-1]["server_name"] == "0.0.0.0" and launched[-1]["max_file_size"] == 2 * 1024 * 1024
    assert any("0.0.0.0" in r.getMessage() and "no login" in r.getMessage() for r in caplog.records)
    assert demo_app.is_loopback("localhost") and demo_app.is_loopback("::1") and demo_app.is_loopback("127.0.0.2")
    assert not demo_app.is_loopback("0.0.0.0") and not demo_app.is_loopback("example.org")


def test_served_demo_refuses_oversized_uploads(run_dirs, monkeypatch):
    """A real server on a free loopback port: Gradio itself answers 413 above --max-upload-mb."""
    import gradio as gr
    import httpx

    servers = []
    original = gr.Blocks.launch

    def launch_in_background(self, **kwargs):
        servers.append(self)
        return original(self, **kwargs, prevent_thread_lock=True)

    monkeypatch.setattr(gr.Blocks, "launch", launch_in_background)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo_app.launch([run_dirs["vae"]], port=port, max_upload_mb=0.01)  # 10,485 bytes
    try:
        url = f"http://127.0.0.1:{port}/gradio_api/upload"
        with httpx.Client(trust_env=False, timeout=30) as client:  # no proxy from the environment for loopback
            small = client.post(url, files={"files": ("small.png", b"x" * 5000, "image/png")})
            large = client.post(url, files={"files": ("large.png", b"x" * 20000, "image/png")})
        assert small.status_code == 200, small.text
        assert large.status_code == 413 and "10485 bytes" in large.text
    finally:
        servers[0].close()


# --- a translation run: the tab shows what the family can do -----------------------------------------


@pytest.fixture(scope="module")
def cyclegan_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("unpaired")
    # noise images: a one-colour image makes every instance norm's input constant, where bf16
    # rounding noise dominates the variance and the gradients overflow (training stops with that error)
    for k, domain in enumerate(("trainA", "trainB")):
        (root / domain).mkdir()
        for i in range(4):
            write_png(root / domain / f"{i}.png", size=(32, 32), seed=10 * k + i)
    config = load_config(CONFIGS / "cyclegan-folder.yaml", [
        f"data.root={root}", "data.image_size=32", "model.ngf=4", "model.ndf=4", "train.batch_size=2",
        "train.epochs=1", "train.progress=false"])
    return train(config, tmp_path_factory.mktemp("runs") / "cyclegan")


def test_cyclegan_tab_translates_an_upload_and_has_no_sampling(tmp_path, cyclegan_run):
    import gradio as gr

    demo = demo_app.build_demo([cyclegan_run])
    assert isinstance(demo, gr.Blocks)
    assert [name for kind, name in _component_labels(demo) if kind == "button"] == ["Translate"]
    (run,) = demo_app.load_demo_runs([cyclegan_run])
    upload = write_png(tmp_path / "photo.png", size=(70, 45), seed=3)
    shown, translated, back = demo_app.translate_upload(run, upload, "AtoB", max_bytes=10**6)
    assert shown.shape == translated.shape == back.shape == (32, 32, 3)
    other = demo_app.translate_upload(run, upload, "BtoA", max_bytes=10**6)[1]
    assert not np.array_equal(translated, other)  # two different generators
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    *images, status = demo_app.translate_callback(run, str(bad), "AtoB", max_bytes=10**6)
    assert images == [None, None, None] and "bad.png" in status


# --- the latent explorer, interpolation, text and offline settings ------------------------------------


def test_latent_plane_clicks_map_to_the_points_they_show(runs):
    from genlab.demo import latent

    vae = runs["vae"]
    plane = latent.latent_plane(vae)
    cells, size = latent.PLANE_CELLS, vae.config.data.image_size
    assert plane.shape == (cells * size, cells * size, 3) and plane.dtype == np.uint8
    assert latent.latent_plane(vae) is plane  # computed once per run and class
    # the centre of cell (row 0, col cells-1) is the point (r - r/cells, r - r/cells): its decoded image is that cell
    r = latent.LATENT_RANGE
    x, y = (cells - 0.5) * size, 0.5 * size
    z1, z2 = latent.point_from_click(x, y, plane.shape[1], plane.shape[0])
    assert z1 == pytest.approx(r - r / cells, abs=0.015) and z2 == pytest.approx(r - r / cells, abs=0.015)  # ±½ pixel
    cell = plane[:size, -size:, 0]
    decoded = latent.decode_point(vae, [r - r / cells, r - r / cells])
    assert np.abs(cell.astype(int) - decoded.astype(int)).max() <= 1
    marked = latent.mark_point(plane, z1, z2)
    assert np.array_equal(marked[int(y), int(x)], latent.MARKER_COLOUR) and not np.array_equal(marked, plane)

    image, shown_plane, status = latent.explore_callback(vae, None, 0.5, -1.0)
    assert status == "z = (0.50, -1.00)" and shown_plane.shape == plane.shape and image.shape[0] >= 256
    for bad, words in (((4.0, 0.0), "z1: got 4.0"), (("x", 0.0), "z1: got 'x'"), ((0.0, float("nan")), "z2")):
        assert latent.explore_callback(vae, None, *bad)[2].startswith(f"error: {words}"), bad
    cvae = runs["cvae"]
    assert "needs a class label" in latent.explore_callback(cvae, None, 0.0, 0.0)[2]
    assert not np.array_equal(latent.decode_point(cvae, [0, 0], 1), latent.decode_point(cvae, [0, 0], 7))


def test_interpolation_ends_at_the_seeds_samples(runs):
    from genlab.demo import latent

    gan = runs["gan"]
    strip = latent.interpolation_strip(gan, 3, 11, 5)
    size = gan.config.data.image_size
    assert strip.shape == (size + 4, 5 * (size + 2) + 2)
    first, last = strip[2:2 + size, 2:2 + size], strip[2:2 + size, -2 - size:-2]
    assert np.array_equal(first, demo_app.sample_grid(gan, 1, 3)[2:-2, 2:-2])  # `genlab sample --n 1 --seed 3`
    assert np.array_equal(last, demo_app.sample_grid(gan, 1, 11)[2:-2, 2:-2])
    a, b = torch.randn(1, 6), torch.randn(1, 6)
    path = latent.slerp(a, b, torch.tensor([0.0, 0.5, 1.0]))
    assert torch.allclose(path[0], a[0], atol=1e-6) and torch.allclose(path[2], b[0], atol=1e-6)
    assert latent.interpolate_callback(gan, 0, 1, 1)[1].startswith("error: frames: got 1")
    assert "needs a class label" in latent.interpolate_callback(runs["cvae"], 0, 1, 4)[1]


def test_text_and_translation_sections_refuse_what_they_cannot_do(runs, tmp_path):
    from genlab.demo import examples, text

    assert text.text_callback(runs["vae"], "a red apple", 1, 0)[2].startswith("error: the vae model")
    with pytest.raises(GenlabError, match="type a caption"):
        text.check_caption("   ")
    with pytest.raises(GenlabError, match="at most"):
        text.check_caption("x" * (text.MAX_CAPTION_CHARS + 1))
    assert examples.translation_examples(runs["vae"], tmp_path) == []  # not a two-domain dataset: no examples


def test_the_demo_fetches_no_font_and_sends_no_analytics(monkeypatch):
    monkeypatch.delenv("GRADIO_ANALYTICS_ENABLED", raising=False)
    monkeypatch.delenv("HF_HUB_DISABLE_TELEMETRY", raising=False)
    gr = demo_app.require_gradio()
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False" and os.environ["HF_HUB_DISABLE_TELEMETRY"] == "1"
    theme = demo_app.offline_theme(gr)
    fonts = [*theme._font, *theme._font_mono]
    assert all(isinstance(f, str) for f in fonts)  # system font names only: no GoogleFont, no LocalFont file
    assert "DejaVu Sans" in fonts and "monospace" in fonts
