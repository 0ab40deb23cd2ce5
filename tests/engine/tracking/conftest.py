"""Trackio fixes its folder from TRACKIO_DIR when it is first imported: point it at a fresh temporary
folder before any test imports it, so the tests never write into the user's ~/.cache."""

import os
import tempfile

os.environ["TRACKIO_DIR"] = tempfile.mkdtemp(prefix="llmlab-trackio-")
