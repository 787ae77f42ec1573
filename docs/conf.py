"""Sphinx configuration for xbp's manual: `python -m sphinx -W -b html docs docs/_build/html`."""
import os
import sys

sys.path.insert(0, os.path.abspath(".."))
sys.path.insert(0, os.path.abspath("_ext"))

import xbp  # noqa: E402

project = "xbp"
author = "the xbp developers"
copyright = "2026, the xbp developers"  # noqa: A001
release = xbp.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_parser",
    "runexample",
    "plaindocs",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "__pycache__"]
myst_heading_anchors = 3
default_role = "literal"          # `name` in docstrings renders as code, as in the source
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": False}
autodoc_typehints = "none"
autosummary_generate = False
napoleon_google_docstring = True
napoleon_numpy_docstring = True
nitpicky = False
suppress_warnings = ["myst.header", "autodoc.import_object"]

html_theme = "furo"
html_title = f"xbp {release}"
