"""Gradio widgets of the demo sections that a family's abilities add to a run's tab.

* ``latent`` (VAE, CVAE, GAN): :func:`latent_section` — the latent explorer (a clickable decoded plane
  and two sliders for a 2-D latent, sliders for the first dimensions of a larger one) — and
  :func:`interpolation_section` (a strip of frames between the latents of two seeds);
* ``text`` (StackGAN): :func:`text_section` — a caption, example captions of the run's data, and the
  Stage-I and Stage-II images.

The work is done by :mod:`genlab.demo.latent` and :mod:`genlab.demo.text`; ``gr`` is the Gradio module,
passed in so that this module imports without the ``demo`` extra. Endpoints are named
``/run<index>_<what>``.
"""

from __future__ import annotations

import functools

import genlab.demo.latent as latent
import genlab.demo.text as text
from genlab.demo.runs import DemoRun, enlarge

#: the corner buttons of output images: no "share" (it posts the image to Hugging Face Spaces discussions)
IMAGE_BUTTONS = ("download", "fullscreen")


def output_image(gr, label: str, elem_id: str, value=None):
    """A read-only PNG image output (``uint8`` arrays), with download and full-screen buttons only."""
    return gr.Image(value=value, label=label, type="numpy", format="png", interactive=False,
                    buttons=list(IMAGE_BUTTONS), elem_id=elem_id)


def _class_dropdown(gr, run: DemoRun, key: str):
    return gr.Dropdown([(str(k), k) for k in range(run.num_classes)], value=0, label="class label",
                       elem_id=f"{key}_label")


def latent_section(gr, run: DemoRun, index: int) -> None:
    """Sliders (and for a 2-D latent a plane to click) that decode a latent point at once."""
    key = f"run{index}_latent"
    dim, count = latent.latent_dim(run), latent.slider_count(run)
    r = latent.LATENT_RANGE
    rest = "" if count == dim else f" (the first {count} of {dim} dimensions; the others stay at 0, the prior's mean)"
    how = "Click a point on the decoded latent plane or move the sliders" if dim == 2 else "Move the sliders"
    gr.Markdown(f"### Explore the latent space\n{how}{rest}: the decoder draws that point at once. "
                f"The sliders span ±{r:g}, three standard deviations of the prior N(0, I).")
    label = _class_dropdown(gr, run, key) if run.num_classes else None
    first_label = 0 if run.num_classes else None
    image, plane_value = latent.explore(run, [0.0] * count, first_label)
    with gr.Row():
        plane = (output_image(gr, "latent plane (click a point): z1 → right, z2 ↑ up", f"{key}_plane", plane_value)
                 if plane_value is not None else None)
        with gr.Column():
            sliders = [gr.Slider(-r, r, value=0.0, step=0.01, label=f"z{i + 1}", elem_id=f"{key}_z{i + 1}")
                       for i in range(count)]
            decoded = output_image(gr, "decoded image", f"{key}_image", enlarge(image))
    status = gr.Textbox(label="status", interactive=False, max_lines=2, elem_id=f"{key}_status")

    def explore(*values):
        chosen, point = (values[0], values[1:]) if label is not None else (None, values)
        shown, marked, message = latent.explore_callback(run, chosen, *point)
        return (shown, marked, message) if plane is not None else (shown, message)

    inputs = ([label] if label is not None else []) + sliders
    outputs = [decoded] + ([plane] if plane is not None else []) + [status]
    # .input (a user's edit), not .change: a click on the plane sets z1 and z2 itself and decodes once,
    # where .change would decode that point twice more and Gradio would rewrite the same cached PNG in place
    # while the browser reads it
    for number, slider in enumerate(sliders, start=1):
        slider.input(explore, inputs, outputs, api_name=f"{key}_z{number}", show_progress="hidden")
    if label is not None:
        label.change(explore, inputs, outputs, api_name=f"{key}_class", show_progress="hidden")
    if plane is not None:  # a 2-D latent: the click sets both sliders
        def decode_click(chosen, x, y):
            z1, z2 = latent.plane_click_callback(run, chosen, x, y)
            return (z1, z2, *explore(*([chosen] if label is not None else []), z1, z2))

        if label is not None:
            def clicked(chosen, evt):
                return decode_click(chosen, *evt.index[:2])
        else:
            def clicked(evt):
                return decode_click(None, *evt.index[:2])

        # Gradio passes the click (pixel x, y of the picture) to the positional argument annotated SelectData
        clicked.__annotations__ = {"evt": gr.SelectData}
        plane.select(clicked, [label] if label is not None else [], sliders + outputs, api_name=f"{key}_click",
                     show_progress="hidden")


def interpolation_section(gr, run: DemoRun, index: int) -> None:
    """Two seeds and a number of frames → one strip of images from seed A's latent to seed B's."""
    key = f"run{index}_interpolate"
    gr.Markdown("### Interpolate between two seeds\nFrames along the great circle (slerp) from the latent of "
                "seed A to that of seed B; the end frames are `genlab sample --n 1` with those seeds.")
    with gr.Row():
        seed_a = gr.Number(value=0, precision=0, minimum=0, label="seed A", elem_id=f"{key}_seed_a")
        seed_b = gr.Number(value=1, precision=0, minimum=0, label="seed B", elem_id=f"{key}_seed_b")
        frames = gr.Slider(2, latent.MAX_FRAMES, value=8, step=1, label="frames", elem_id=f"{key}_frames")
        label = _class_dropdown(gr, run, key) if run.num_classes else None
    button = gr.Button("Interpolate", variant="primary", elem_id=f"{key}_button")
    strip = output_image(gr, "interpolation", f"{key}_image")
    status = gr.Textbox(label="status", interactive=False, max_lines=2, elem_id=f"{key}_status")
    inputs = [seed_a, seed_b, frames] + ([label] if label is not None else [])
    button.click(functools.partial(latent.interpolate_callback, run), inputs, [strip, status], api_name=key)


def text_section(gr, run: DemoRun, index: int) -> None:
    """A caption (typed or picked from the run's data), a seed and a count → Stage-I and final images."""
    key = f"run{index}_text"
    captions = text.example_captions(run)
    first = captions[0] if captions else ""
    low, final, first_status = text.text_callback(run, first, 4, 0) if first else (None, None, "")
    two_stages = low is not None
    gr.Markdown("### Text to image\nType a caption (or pick an example from the run's data); the same caption "
                "and seed give the same images as `genlab sample RUN --text CAPTION --n N --seed S`.")
    with gr.Row():
        caption = gr.Textbox(value=first, label="caption", max_lines=2, elem_id=f"{key}_caption")
        with gr.Column(scale=0, min_width=220):
            n = gr.Slider(1, text.MAX_TEXT_IMAGES, value=4, step=1, label="number of images", elem_id=f"{key}_n")
            seed = gr.Number(value=0, precision=0, minimum=0, label="seed", elem_id=f"{key}_seed")
    if captions:
        gr.Examples([[c] for c in captions], [caption], label="example captions (from the run's data)")
    button = gr.Button("Generate", variant="primary", elem_id=f"{key}_button")
    with gr.Row():
        stage1 = output_image(gr, "Stage-I (enlarged)", f"{key}_stage1", low) if two_stages else None
        shown = output_image(gr, "Stage-II" if two_stages else "generated (Stage-I model)", f"{key}_image", final)
    status = gr.Textbox(value=first_status, label="status", interactive=False, max_lines=2, elem_id=f"{key}_status")

    def generate(caption_text, count, seed_value):
        low_grid, final_grid, message = text.text_callback(run, caption_text, count, seed_value)
        return (low_grid, final_grid, message) if two_stages else (final_grid, message)

    outputs = ([stage1] if stage1 is not None else []) + [shown, status]
    button.click(generate, [caption, n, seed], outputs, api_name=key)
    caption.submit(generate, [caption, n, seed], outputs, api_name=f"{key}_submit")
