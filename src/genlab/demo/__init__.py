"""Web demo of trained runs (``genlab demo``); needs the ``demo`` extra: ``pip install 'genlab[demo]'``.

* :mod:`genlab.demo.uploads` checks an uploaded image and prepares it as a run's model sees it
  (a float tensor ``(1, C, S, S)``); it does not import Gradio.
* :mod:`genlab.demo.runs` loads the runs and checks every input; :mod:`genlab.demo.latent` (latent
  explorer, seed interpolation), :mod:`genlab.demo.text` (text to image) and :mod:`genlab.demo.examples`
  (test images to translate) do the work of the sections, on tensors and arrays;
* :mod:`genlab.demo.sections` and :mod:`genlab.demo.app` build the Gradio app (:func:`build_demo`, one tab
  per run, sections by the family's abilities) and serve it (:func:`launch`, on 127.0.0.1 by default,
  offline). Gradio is imported only when the app is built, so importing this package works without the extra.
"""

from genlab.demo.app import build_demo, check_run_dirs, launch, require_gradio
from genlab.demo.uploads import DEFAULT_MAX_UPLOAD_MB, UploadError, load_upload

__all__ = ["DEFAULT_MAX_UPLOAD_MB", "UploadError", "build_demo", "check_run_dirs", "launch", "load_upload",
           "require_gradio"]
