"""``.. runexample:: examples/tutorial_backprop_222.py`` — run a tutorial when the docs are built
and show its source and what it printed, so the rendered output is always the code's real output."""
from __future__ import annotations

import os
import subprocess
import sys

from docutils import nodes
from docutils.parsers.rst import Directive, directives


class RunExample(Directive):
    required_arguments = 1
    option_spec = {"args": directives.unchanged, "timeout": directives.positive_int}

    def run(self):
        root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
        path = os.path.join(root, self.arguments[0])
        env = dict(os.environ, TQDM_DISABLE="1", MPLBACKEND="Agg",
                   PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
        args = (self.options.get("args") or "").split()
        try:
            done = subprocess.run([sys.executable, path, *args], cwd=root, env=env, capture_output=True,
                                  text=True, timeout=self.options.get("timeout", 120))
        except subprocess.TimeoutExpired:
            raise self.error(f"runexample: {self.arguments[0]} ran past its timeout")
        if done.returncode != 0:
            raise self.error(f"runexample: {self.arguments[0]} exited {done.returncode}:\n{done.stderr[-2000:]}")
        with open(path, encoding="utf-8") as f:
            source = f.read()
        code = nodes.literal_block(source, source, language="python")
        out = nodes.literal_block(done.stdout, done.stdout, language="text")
        return [nodes.rubric(text="Source"), code, nodes.rubric(text="Output (produced when these docs were built)"), out]


def setup(app):
    app.add_directive("runexample", RunExample)
    return {"parallel_read_safe": True, "version": "1"}
