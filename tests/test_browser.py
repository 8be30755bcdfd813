"""The web demo in a real headless Chromium (Debian ``chromium``, driven by Playwright).

One demo serves tiny trained runs of every family on a free loopback port; the tests click through
each section as a user would and check that an image appears and that its pixels change, that refused
uploads show their message in the page, and that neither the page nor the server contacted anything
but localhost (every request URL the page makes is recorded, and so is every host name the server
process looks up). ``scripts/setup.sh --test`` installs Chromium and Playwright; in CI a skip is a failure.
"""

from __future__ import annotations

import io
import re
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import tiny_runs
from genlab.demo import app as demo_app
from genlab.demo import latent

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("browser")]

CHROMIUM = Path("/usr/bin/chromium")
#: as in DESIGN.md: no sandbox (root in CI), no GPU, and none of Chromium's own background traffic
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
MAX_UPLOAD_MB = 1
#: tab order of the demo (run<index> in the widgets' element ids)
TABS = ("vae", "vae8", "cvae", "gan", "cyclegan", "stackgan1", "stackgan2")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


# --- the demo and the browser, once for the module --------------------------------------------------


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("browser_runs")
    captioned = tiny_runs.captioned_folder(root / "captioned")
    stage1 = tiny_runs.train_stackgan(root / "stackgan1", captioned)
    return [
        tiny_runs.train_vae(root / "vae"),
        tiny_runs.train_vae(root / "vae8", "model.latent_dim=8"),
        tiny_runs.train_cvae(root / "cvae"),
        tiny_runs.train_gan(root / "gan"),
        tiny_runs.train_cyclegan(root / "cyclegan", tiny_runs.unpaired_folder(root / "unpaired")),
        stage1,
        tiny_runs.train_stackgan(root / "stackgan2", captioned, stage1),
    ]


@pytest.fixture(scope="module")
def server(run_dirs):
    """``genlab demo`` (through :func:`demo_app.launch`, in the background) on a free loopback port; yields
    ``(base URL, host names the server process looked up)``."""
    import gradio as gr

    looked_up: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def recording_getaddrinfo(host, *args, **kwargs):
        looked_up.append(str(host))
        return real_getaddrinfo(host, *args, **kwargs)

    servers = []
    real_launch = gr.Blocks.launch

    def launch_in_background(self, **kwargs):
        servers.append(self)
        return real_launch(self, **kwargs, prevent_thread_lock=True)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", recording_getaddrinfo)
        patch.setattr(gr.Blocks, "launch", launch_in_background)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        demo_app.launch(run_dirs, port=port, max_upload_mb=MAX_UPLOAD_MB)
        try:
            yield f"http://127.0.0.1:{port}", looked_up
        finally:
            servers[0].close()


@pytest.fixture(scope="module")
def browser_page(server):
    """A Chromium page on the demo; yields ``(page, every URL the page requested)``."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (genlab[test])")
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found: apt-get install chromium chromium-driver (scripts/setup.sh --test)")
    base, _ = server
    requested: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(30_000)
        page.on("request", lambda request: requested.append(request.url))
        page.goto(base, wait_until="networkidle")
        try:
            yield page, requested
        finally:
            browser.close()


@pytest.fixture
def page(browser_page, server):
    """The page; after each test, nothing was requested off localhost, by the page or by the server."""
    page, requested = browser_page
    yield page
    base, looked_up = server
    off_page = [url for url in requested if not url.startswith((base + "/", "data:", "blob:"))]
    off_server = [host for host in looked_up if host not in LOOPBACK]
    assert not off_page, f"the page requested {off_page}"
    assert not off_server, f"the server looked up {off_server}"


# --- helpers ------------------------------------------------------------------------------------------


def open_tab(page, name: str) -> int:
    """Click the run's tab; returns its index (the ``run<index>`` of its element ids)."""
    page.get_by_role("tab", name=name, exact=True).click()
    return TABS.index(name) + 1


def status(page, elem_id: str, pattern: str) -> str:
    """Wait until the status box ``elem_id`` matches ``pattern`` (a regex); return its text."""
    from playwright.sync_api import expect

    box = page.locator(f"#{elem_id} textarea")
    expect(box).to_have_value(re.compile(pattern))
    return box.input_value()


def shown(page, elem_id: str, previous: tuple[str, np.ndarray] | None = None) -> tuple[str, np.ndarray]:
    """``(src, pixels)`` of the image shown by output ``elem_id``, fetched from the demo's server. With
    ``previous``, waits (up to 30 s) for a new picture first: the page swaps the file when the pixels change
    (the status line can update before the image does; 10 s was once too short on a loaded 2-core machine)."""
    img = page.locator(f"#{elem_id} img").first
    src = img.get_attribute("src")
    deadline = time.monotonic() + 30
    while previous is not None and src == previous[0] and time.monotonic() < deadline:
        time.sleep(0.1)
        src = img.get_attribute("src")
    assert src, f"#{elem_id} shows no image"
    body = page.request.get(src).body()
    return src, np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))


def differ(a: tuple[str, np.ndarray], b: tuple[str, np.ndarray]) -> bool:
    return a[1].shape != b[1].shape or bool(np.any(a[1] != b[1]))


def click_button(page, elem_id: str) -> None:
    page.locator(f"#{elem_id}").click()


def set_number(page, elem_id: str, value) -> None:
    """Type ``value`` into a number box or a slider's number box, and commit it."""
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def pick_example(page, index: int, label: str, file: str, direction: str) -> None:
    """Click the translation example ``label``; wait until its file and direction are in the inputs."""
    from playwright.sync_api import expect

    page.get_by_role("button", name=label).click()
    page.locator(f"#run{index}_translate_upload td.filename[aria-label='{file}']").wait_for()
    expect(page.locator(f"#run{index}_translate_direction input[value={direction}]")).to_be_checked()


def upload(page, elem_id: str, path: Path) -> None:
    """Put ``path`` into the file input ``elem_id`` (clearing a file shown there first)."""
    clear = page.locator(f"#{elem_id} button[aria-label=Clear]")
    if clear.count():
        clear.click()
    page.locator(f"#{elem_id} input[type=file]").set_input_files(str(path))
    page.locator(f"#{elem_id} td.filename[aria-label='{path.name}']").wait_for()  # uploaded


# --- each section -------------------------------------------------------------------------------------


def test_vae_latent_plane_click_and_sliders_decode_at_once(page):
    i = open_tab(page, "vae")
    start = shown(page, f"run{i}_latent_image")
    plane = page.locator(f"#run{i}_latent_plane img")
    box = plane.bounding_box()
    plane.click(position={"x": box["width"] * 0.9, "y": box["height"] * 0.1})  # upper right: z1 > 0, z2 > 0
    text = status(page, f"run{i}_latent_status", r"^z = \(2\.\d\d, 2\.\d\d\)$")
    z1 = float(re.findall(r"-?\d\.\d\d", text)[0])
    assert page.locator(f"#run{i}_latent_z1 input[type=number]").input_value() == f"{z1:g}"
    clicked = shown(page, f"run{i}_latent_image", start)
    assert differ(clicked, start), "the decoded image did not change after a click on the plane"

    plane.click(position={"x": box["width"] * 0.1, "y": box["height"] * 0.9})  # lower left
    status(page, f"run{i}_latent_status", r"^z = \(-2\.\d\d, -2\.\d\d\)$")
    assert differ(shown(page, f"run{i}_latent_image", clicked), clicked)

    before = shown(page, f"run{i}_latent_image")
    set_number(page, f"run{i}_latent_z2", 1.5)
    status(page, f"run{i}_latent_status", r", 1\.50\)$")
    assert differ(shown(page, f"run{i}_latent_image", before), before), "moving slider z2 changed nothing"


def test_a_click_on_the_plane_decodes_its_point_once(page, monkeypatch):
    """The click sets both sliders; their own events must not decode the same point again (Gradio would
    rewrite the same cached PNG while the browser reads it, and the page could show a truncated image)."""
    decoded = []
    explore = latent.explore
    monkeypatch.setattr(latent, "explore", lambda run, values, label=None: decoded.append(tuple(values))
                        or explore(run, values, label))
    i = open_tab(page, "vae")
    before = shown(page, f"run{i}_latent_image")
    plane = page.locator(f"#run{i}_latent_plane img")
    box = plane.bounding_box()
    plane.click(position={"x": box["width"] * 0.3, "y": box["height"] * 0.6})
    status(page, f"run{i}_latent_status", r"^z = \(-1\.\d\d, -0\.\d\d\)$")
    shown(page, f"run{i}_latent_image", before)
    time.sleep(2)  # the sliders' events, if any, come right after the click's outputs
    assert len(decoded) == 1, f"one click decoded {decoded}"


def test_vae_with_a_larger_latent_has_sliders_for_its_first_dimensions(page):
    i = open_tab(page, "vae8")
    assert page.locator(f"#run{i}_latent_plane").count() == 0  # a plane only for 2-D latents
    assert page.locator(f"#run{i}_latent_z8").count() == 1 and page.locator(f"#run{i}_latent_z9").count() == 0
    before = shown(page, f"run{i}_latent_image")
    set_number(page, f"run{i}_latent_z3", 2.5)
    status(page, f"run{i}_latent_status", r"^z = \(0\.00, 0\.00, 2\.50, 0\.00, 0\.00, 0\.00, 0\.00, 0\.00\)$")
    assert differ(shown(page, f"run{i}_latent_image", before), before)


def test_cvae_digit_and_latent_point(page):
    i = open_tab(page, "cvae")
    image, plane = shown(page, f"run{i}_latent_image"), shown(page, f"run{i}_latent_plane")
    page.locator(f"#run{i}_latent_label input").click()
    page.get_by_role("option", name="7", exact=True).click()
    status(page, f"run{i}_latent_status", r"^z = \(0\.00, 0\.00\)$")
    new_plane = shown(page, f"run{i}_latent_plane", plane)
    assert differ(new_plane, plane), "the plane was not redrawn for digit 7"
    assert differ(shown(page, f"run{i}_latent_image", image), image)
    plane_box = page.locator(f"#run{i}_latent_plane img").bounding_box()
    before = shown(page, f"run{i}_latent_image")
    page.locator(f"#run{i}_latent_plane img").click(position={"x": plane_box["width"] * 0.8,
                                                              "y": plane_box["height"] * 0.5})
    status(page, f"run{i}_latent_status", r"^z = \(1\.\d\d, ")
    assert differ(shown(page, f"run{i}_latent_image", before), before)


def test_gan_samples_a_seed_and_interpolates_between_two_seeds(page):
    i = open_tab(page, "gan")
    click_button(page, f"run{i}_sample_button")
    status(page, f"run{i}_sample_status", r"^16 samples, seed 0$")
    first = shown(page, f"run{i}_sample_image")
    set_number(page, f"run{i}_sample_seed", 5)
    click_button(page, f"run{i}_sample_button")
    status(page, f"run{i}_sample_status", r"^16 samples, seed 5$")
    assert differ(shown(page, f"run{i}_sample_image", first), first)

    set_number(page, f"run{i}_interpolate_frames", 6)
    click_button(page, f"run{i}_interpolate_button")
    status(page, f"run{i}_interpolate_status", r"^6 frames from seed 0 to seed 1")
    strip = shown(page, f"run{i}_interpolate_image")
    height, width = strip[1].shape[:2]
    assert width > 5 * height  # one row of six frames
    set_number(page, f"run{i}_interpolate_seed_b", 9)
    click_button(page, f"run{i}_interpolate_button")
    status(page, f"run{i}_interpolate_status", r"^6 frames from seed 0 to seed 9")
    assert differ(shown(page, f"run{i}_interpolate_image", strip), strip)


def test_cyclegan_translates_test_examples_and_uploads_in_both_directions(page, tmp_path):
    i = open_tab(page, "cyclegan")
    pick_example(page, i, "test A #1 (AtoB)", "testA_00.png", "AtoB")
    click_button(page, f"run{i}_translate_button")
    status(page, f"run{i}_translate_status", r"^testA_00\.png: AtoB and back$")
    a_to_b = {key: shown(page, f"run{i}_translate_{key}") for key in ("input", "image", "cycle")}

    pick_example(page, i, "test B #1 (BtoA)", "testB_00.png", "BtoA")  # the example sets the direction too
    click_button(page, f"run{i}_translate_button")
    status(page, f"run{i}_translate_status", r"^testB_00\.png: BtoA and back$")
    for key in ("input", "image", "cycle"):
        assert differ(shown(page, f"run{i}_translate_{key}", a_to_b[key]), a_to_b[key]), key

    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (45, 70, 3), dtype=np.uint8)).save(photo)
    before = shown(page, f"run{i}_translate_image")
    upload(page, f"run{i}_translate_upload", photo)
    page.get_by_label("AtoB").check()
    click_button(page, f"run{i}_translate_button")
    status(page, f"run{i}_translate_status", r"^photo\.png: AtoB and back$")
    assert differ(shown(page, f"run{i}_translate_image", before), before)


def test_refused_uploads_show_their_message_in_the_page(page, tmp_path):
    i = open_tab(page, "vae")
    notes = tmp_path / "notes.png"
    notes.write_text("this is a text file renamed to .png\n")
    upload(page, f"run{i}_reconstruct_upload", notes)
    click_button(page, f"run{i}_reconstruct_button")
    status(page, f"run{i}_reconstruct_status", r"^error: notes\.png: not a recognised image format")

    i = open_tab(page, "cyclegan")
    big = tmp_path / "big.png"
    big.write_bytes(bytes(MAX_UPLOAD_MB * 1024 * 1024 + 1))  # Gradio refuses it before genlab sees it
    clear = page.locator(f"#run{i}_translate_upload button[aria-label=Clear]")
    if clear.count():
        clear.click()
    page.locator(f"#run{i}_translate_upload input[type=file]").set_input_files(str(big))
    # Gradio's own check (its server would also answer 413): a message in the page names the file
    page.get_by_text(re.compile(r'exceed the maximum allowed size of 1(\.0)? ?Mb: "big\.png"', re.IGNORECASE)).first.wait_for()


def test_stackgan_caption_gives_stage1_and_stage2_images(page):
    from playwright.sync_api import expect

    i = open_tab(page, "stackgan2")
    low, final = shown(page, f"run{i}_text_stage1"), shown(page, f"run{i}_text_image")  # the first example, drawn at start
    page.get_by_role("button", name="a red circle").click()
    expect(page.locator(f"#run{i}_text_caption textarea")).to_have_value("a red circle")
    set_number(page, f"run{i}_text_seed", 3)
    click_button(page, f"run{i}_text_button")
    status(page, f"run{i}_text_status", r"^4 image\(s\), seed 3; Stage-I and Stage-II$")
    assert differ(shown(page, f"run{i}_text_stage1", low), low)
    assert differ(shown(page, f"run{i}_text_image", final), final)

    page.locator(f"#run{i}_text_caption textarea").fill("")
    click_button(page, f"run{i}_text_button")
    status(page, f"run{i}_text_status", r"^error: caption: type a caption first")

    i = open_tab(page, "stackgan1")  # a Stage-I run: one image per caption
    assert page.locator(f"#run{i}_text_stage1").count() == 0
    page.locator(f"#run{i}_text_caption textarea").fill("a yellow square")
    before = shown(page, f"run{i}_text_image")
    set_number(page, f"run{i}_text_seed", 7)
    click_button(page, f"run{i}_text_button")
    status(page, f"run{i}_text_status", r"^4 image\(s\), seed 7; final images only")
    assert differ(shown(page, f"run{i}_text_image", before), before)
