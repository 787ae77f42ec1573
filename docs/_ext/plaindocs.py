"""Read xbp's docstrings as the plain text they are written in: shapes like ``(N, C, *)`` and
norms like ``|x|`` are not RST markup, and "name: text" lines with indented continuations are
definition lists. This hook adds the escapes and blank lines RST needs, so the sources stay
readable in ``help()`` and the manual builds with warnings as errors."""
from __future__ import annotations

import re

_STAR = re.compile(r"(?<=[\s(,\[])\*{1,2}(?=[\s,)\]\w])")
_BARS = re.compile(r"(?<![`|])\|([^|`\n]+?)\|(?![`|])")


def _indent(s: str) -> int:
    return len(s) - len(s.lstrip())


def _is_bullet(s: str) -> bool:
    t = s.lstrip()
    return t.startswith(("* ", "- ")) and not t.startswith("- >")


def plain_to_rst(lines: list[str]) -> list[str]:
    out: list[str] = []
    in_literal = False
    literal_indent = 0
    for line in lines:
        if in_literal:
            if line.strip() and _indent(line) <= literal_indent:
                in_literal = False
            else:
                out.append(line)
                continue
        if "``" not in line:
            line = _BARS.sub(lambda m: "\\|" + m.group(1) + "\\|", line)
            line = _STAR.sub(lambda m: "\\*" * len(m.group(0)), line)
        prev = out[-1] if out else ""
        if line.strip() and prev.strip():
            if _indent(line) > _indent(prev) and not prev.rstrip().endswith("::"):
                # "term\n    definition": make the term start a definition list item
                if len(out) >= 2 and out[-2].strip():
                    out.insert(len(out) - 1, "")
            elif _indent(line) < _indent(prev):
                out.append("")
            elif _is_bullet(line) and not _is_bullet(prev):
                out.append("")
        out.append(line)
        if line.rstrip().endswith("::"):
            in_literal, literal_indent = True, _indent(line)
    return out


def _process(app, what, name, obj, options, lines):
    lines[:] = plain_to_rst(list(lines))


def setup(app):
    app.connect("autodoc-process-docstring", _process)
    return {"parallel_read_safe": True, "version": "1"}
