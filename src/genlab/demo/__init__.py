"""Web demo of trained runs (``genlab demo``); needs the ``demo`` extra: ``pip install 'genlab[demo]'``.

* :mod:`genlab.demo.uploads` checks an uploaded image and prepares it as a run's model sees it
  (a float tensor ``(1, C, S, S)``); it does not import Gradio.
* :mod:`genlab.demo.app` builds the Gradio app (:func:`build_demo`, one tab per run) and serves it
  (:func:`launch`, on 127.0.0.1 by default). Gradio is imported only when the app is built, so
  importing this package works without the extra.
"""

from genlab.demo.app import build_demo, check_run_dirs, launch, require_gradio
from genlab.demo.uploads import DEFAULT_MAX_UPLOAD_MB, UploadError, load_upload

__all__ = ["DEFAULT_MAX_UPLOAD_MB", "UploadError", "build_demo", "check_run_dirs", "launch", "load_upload",
           "require_gradio"]
