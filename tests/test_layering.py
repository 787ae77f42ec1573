"""The import graph of xbp runs one way (issue 16): a module imports only from its own layer and
the layers below it, at module level and inside functions alike (an import moved into a function
is still a dependency). The one exception is the block at the end of xbp/_tensor.py where
Tensor's methods are bound to the layers above that implement them (BINDING below).

LAYERS, lowest first, is the map of the code; docs/CONTRIBUTING.md shows the same table (a test
below holds the two together). A new module goes into the table, or the test names it. Run as a
script (``python tests/test_layering.py``) to print the table as CONTRIBUTING shows it.

The check reads the source (``ast``): ``import a.b``, ``from . import c``, ``from ..d import e``
and ``importlib.import_module("xbp.f")`` / ``__import__("xbp.f")`` with a literal name, at any
depth, including under ``if TYPE_CHECKING:``."""
from __future__ import annotations

import ast
import os
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "xbp")
CONTRIBUTING = os.path.join(ROOT, "docs", "CONTRIBUTING.md")

# (layer, what it holds, modules). A name covers the module and, for a package, everything under
# it; "xbp" is the package's own __init__.py alone.
LAYERS = [
    ("backend", "arrays, devices, dtypes, sizes: nothing that needs a Tensor",
     ["xbp._backend", "xbp._cublas", "xbp._cuda_runtime", "xbp._size", "xbp._grad_fn_names", "xbp._torch_pickle",
      "xbp.return_types"]),
    ("tensor", "the Tensor record (no maths) and its predicates",
     ["xbp._tensor", "xbp._predicates"]),
    ("primitive", "Primitive, apply and the graph Node; grad and inference mode",
     ["xbp._primitive", "xbp._grad_mode", "xbp._inference"]),
    ("engine", "backward over the recorded graph",
     ["xbp._engine"]),
    ("ops", "the differentiable operations; creating, printing and random tensors",
     ["xbp.ops", "xbp._creation", "xbp._random", "xbp._printing", "xbp._legacy_types"]),
    ("autograd", "autograd tools, transforms, the graph picture; namespaces over the ops",
     ["xbp.autograd", "xbp._debug", "xbp._function", "xbp.func", "xbp.autograd_functional", "xbp.viz",
      "xbp.linalg", "xbp.array_api", "xbp.random", "xbp._tensor_docs"]),
    ("distributed", "collectives between processes",
     ["xbp.distributed"]),
    ("libraries", "layers, optimizers, data loading",
     ["xbp.nn", "xbp.optim", "xbp.data"]),
    ("tools", "tools over whole models; the torch.cuda and torch.utils namespaces",
     ["xbp._compile", "xbp._compile_passes", "xbp._pyguards", "xbp._cuda_graph", "xbp.serialization", "xbp.onnx", "xbp._onnx_attention",
      "xbp.cuda", "xbp.utils"]),
    ("face", "the public top level (explicit re-exports)",
     ["xbp"]),
]

# The one place the graph turns back. Tensor's operators and methods call the ops, the engine,
# creation, printing, the RNG, the legacy types and the Array API namespace, and every one of those
# imports Tensor: so xbp/_tensor.py imports them in one block after its last definition, which
# binds Tensor's methods to them when xbp is imported (the methods look them up at call time).
# Upward imports are allowed there and nowhere else, not even elsewhere in _tensor.py.
BINDING = "xbp._tensor"   # its imports after the module's last definition


# --- reading the source -----------------------------------------------------------------------------
def module_files(package_dir: str = PACKAGE) -> dict[str, tuple[str, bool]]:
    """{dotted module name: (path, is a package)} of every .py file under the package."""
    out = {}
    base = os.path.dirname(package_dir)
    for dirpath, dirnames, filenames in os.walk(package_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__pycache__")))
        for f in sorted(filenames):
            if not f.endswith(".py"):
                continue
            path = os.path.join(dirpath, f)
            name = os.path.relpath(path, base)[:-3].replace(os.sep, ".")
            is_pkg = name.endswith(".__init__")
            out[name[:-len(".__init__")] if is_pkg else name] = (path, is_pkg)
    return out


class Import:
    """One import statement (or literal import_module call) naming an xbp module."""

    def __init__(self, module, line, target, text, in_function, binding):
        self.module, self.line, self.target, self.text = module, line, target, text
        self.in_function, self.binding = in_function, binding


def _literal_import(node):
    """The module name of ``importlib.import_module("x")`` / ``__import__("x")``, else None."""
    if not isinstance(node, ast.Call) or not node.args or not isinstance(node.args[0], ast.Constant):
        return None
    f = node.func
    name = f.attr if isinstance(f, ast.Attribute) else (f.id if isinstance(f, ast.Name) else None)
    if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
        return node.args[0].value
    return None


def imports_of(module: str, source: str, is_pkg: bool, known: set[str]) -> list[Import]:
    """Every import of an xbp module in `source` (the text of `module`), with its line."""
    tree = ast.parse(source)
    package = module if is_pkg else module.rpartition(".")[0]
    last_def = max((n.lineno for n in tree.body
                    if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))), default=0)
    found = []

    def targets(node):
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        if node.level:
            parts = package.split(".")
            base = ".".join(parts[:len(parts) - (node.level - 1)])
            full = f"{base}.{node.module}" if node.module else base
        else:
            full = node.module or ""
        # `from pkg import sub` imports the submodule; `from mod import name`, the module
        return [f"{full}.{a.name}" if f"{full}.{a.name}" in known else full for a in node.names]

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                names = targets(child)
            else:
                lit = _literal_import(child)
                names = [lit] if lit else []
            text = ast.get_source_segment(source, child) if names else None
            for t in dict.fromkeys(names):
                if t == "xbp" or t.startswith("xbp."):
                    binding = (module == BINDING and not inner and node is tree
                               and child.lineno > last_def)
                    found.append(Import(module, child.lineno, t, " ".join(text.split()), inner, binding))
            visit(child, inner)

    visit(tree, False)
    return found


def layer_of(module: str) -> int | None:
    """The index in LAYERS of the layer holding `module` (the longest name that covers it)."""
    best, best_len = None, -1
    for i, (_, _, names) in enumerate(LAYERS):
        for n in names:
            covers = module == n if n == "xbp" else (module == n or module.startswith(n + "."))
            if covers and len(n) > best_len:
                best, best_len = i, len(n)
    return best


def upward_imports(mods: dict[str, tuple[str, bool]], sources: dict[str, str] | None = None) -> list[str]:
    """One line per import of a higher layer outside BINDING: file, line, the import, the layers."""
    known = set(mods)
    problems = []
    for module, (path, is_pkg) in sorted(mods.items()):
        src = sources[module] if sources is not None else open(path, encoding="utf-8").read()
        low = layer_of(module)
        for imp in imports_of(module, src, is_pkg, known):
            high = layer_of(imp.target)
            if low is None or high is None or high <= low or imp.binding:
                continue
            where = "inside a function" if imp.in_function else "at module level"
            rel = os.path.relpath(path, ROOT) if os.path.isabs(path) else path
            problems.append(f"{rel}:{imp.line}: `{imp.text}` ({where}) imports {imp.target} (layer "
                            f"'{LAYERS[high][0]}') from layer '{LAYERS[low][0]}'")
    return problems


def layers_markdown() -> str:
    """LAYERS as the table docs/CONTRIBUTING.md shows."""
    rows = ["| layer | holds | modules |", "|---|---|---|"]
    for i, (name, what, names) in enumerate(LAYERS):
        mods = ", ".join(f"`{n}`" for n in names)
        rows.append(f"| {i} {name} | {what} | {mods} |")
    return "\n".join(rows)


# --- the checks ---------------------------------------------------------------------------------------
MODULES = module_files()


def test_every_module_has_a_layer():
    missing = [m for m in MODULES if layer_of(m) is None]
    assert not missing, ("modules in no layer of tests/test_layering.py's LAYERS (add each to the layer "
                         "it belongs to, and to the table in docs/CONTRIBUTING.md): " + ", ".join(missing))


def test_every_layer_name_is_a_module():
    names = [n for _, _, ns in LAYERS for n in ns]
    assert len(names) == len(set(names)), "a module is listed in two layers"
    stale = [n for n in names if n not in MODULES]
    assert not stale, f"LAYERS names modules that do not exist: {stale}"


def test_no_module_imports_a_higher_layer():
    problems = upward_imports(MODULES)
    assert not problems, ("imports from a higher layer (move the code to the layer it belongs to, or "
                          "let the high layer register with the low one):\n" + "\n".join(problems))


def test_the_binding_block_closes_the_file():
    """BINDING's block is the end of xbp/_tensor.py: imports only, after every definition, and it
    binds what Tensor's methods call (so the exception is in use, and only there)."""
    path, is_pkg = MODULES[BINDING]
    src = open(path, encoding="utf-8").read()
    tree = ast.parse(src)
    last_def = max(i for i, n in enumerate(tree.body) if isinstance(n, (ast.FunctionDef, ast.ClassDef)))
    tail = tree.body[last_def + 1:]
    assert tail and all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in tail), \
        "xbp/_tensor.py must end with its binding block: imports only, after the last definition"
    bound = {i.target for i in imports_of(BINDING, src, is_pkg, set(MODULES)) if i.binding}
    assert {"xbp.ops", "xbp._engine"} <= bound
    own = layer_of(BINDING)
    assert all(layer_of(t) > own for t in bound), "the binding block imports only what stands above Tensor"


def test_contributing_shows_the_same_table():
    text = open(CONTRIBUTING, encoding="utf-8").read()
    assert layers_markdown() in text, ("docs/CONTRIBUTING.md's layer table differs from LAYERS in "
                                       "tests/test_layering.py; paste the output of "
                                       "`python tests/test_layering.py` into it")


def test_the_check_names_file_line_and_import():
    """The checker itself, on a made-up package: an upward import at module level and one inside a
    function are reported with their line; downward ones and the binding block are not."""
    mods = {"xbp._engine": ("xbp/_engine.py", False), "xbp.ops": ("xbp/ops/__init__.py", True),
            "xbp.ops.shape": ("xbp/ops/shape.py", False), "xbp._tensor": ("xbp/_tensor.py", False),
            "xbp.nn": ("xbp/nn/__init__.py", True)}
    sources = {
        "xbp._engine": "from ._tensor import Tensor\n\ndef f():\n    from .ops import shape\n",
        "xbp.ops": "from .shape import reshape\nimport xbp.nn\n",
        "xbp.ops.shape": "import importlib\nfrom .._engine import f\n"
                         "def g():\n    return importlib.import_module('xbp.nn')\n",
        "xbp._tensor": "def size():\n    from .ops import shape\nclass Tensor:\n    pass\n"
                       "from . import ops\nfrom . import nn\n",
        "xbp.nn": "from .. import ops\n",
    }
    problems = upward_imports(mods, sources)
    assert problems == [
        "xbp/_engine.py:4: `from .ops import shape` (inside a function) imports xbp.ops.shape "
        "(layer 'ops') from layer 'engine'",
        "xbp/_tensor.py:2: `from .ops import shape` (inside a function) imports xbp.ops.shape "
        "(layer 'ops') from layer 'tensor'",
        "xbp/ops/__init__.py:2: `import xbp.nn` (at module level) imports xbp.nn (layer 'libraries') "
        "from layer 'ops'",
        "xbp/ops/shape.py:4: `importlib.import_module('xbp.nn')` (inside a function) imports xbp.nn "
        "(layer 'libraries') from layer 'ops'",
    ], problems


if __name__ == "__main__":
    print(layers_markdown())
    problems = upward_imports(MODULES)
    if problems:
        print(textwrap.indent("\n".join(problems), "  "), file=sys.stderr)
