"""One pass over the method's Python files: the modules it imports (every import statement parsed
with `ast`; whether it is guarded by try/except ImportError comes from the indentation around
it), which attributes of a module it uses (mmcv.Config only?), the string constants that name
model files (for gated assets), and the checkpoints it unpacks from torch.load (for the
weights-only patch). Whole files are not parsed here: a vendored tree holds megabytes of Python,
and only a handful of its files need more than their import lines.

IMPORT_DISTS maps an import name to the distribution that provides it, for the names whose
distribution is called something else or that a method commonly forgets to declare. Source:
each project's PyPI page. A name not in the table is never guessed into a requirement.
"""

from __future__ import annotations

import ast
import re
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name

# import name -> (distribution to install, other distributions that also provide it)
IMPORT_DISTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "cv2": ("opencv-python-headless", ("opencv-python", "opencv-contrib-python", "opencv-contrib-python-headless")),
    "PIL": ("pillow", ("pil",)),
    "sklearn": ("scikit-learn", ("sklearn",)),
    "skimage": ("scikit-image", ()),
    "yaml": ("pyyaml", ()),
    "attr": ("attrs", ()),
    "dateutil": ("python-dateutil", ()),
    "bs4": ("beautifulsoup4", ()),
    "OpenGL": ("PyOpenGL", ()),
    "igl": ("libigl", ()),
    "mcubes": ("PyMCubes", ()),
    "face_alignment": ("face-alignment", ()),
    "configargparse": ("ConfigArgParse", ()),
    "pyaudio": ("PyAudio", ()),
    "tensorboardX": ("tensorboardX", ()),
    "imageio_ffmpeg": ("imageio-ffmpeg", ()),
    "skvideo": ("scikit-video", ()),
    "pytorch_lightning": ("pytorch-lightning", ("lightning",)),
    "lightning": ("lightning", ()),
    "hydra": ("hydra-core", ()),
    "omegaconf": ("omegaconf", ()),
    "plyfile": ("plyfile", ()),
    "trimesh": ("trimesh", ()),
    "open3d": ("open3d", ()),
    "lpips": ("lpips", ()),
    "kornia": ("kornia", ()),
    "einops": ("einops", ()),
    "tqdm": ("tqdm", ()),
    "scipy": ("scipy", ()),
    "numpy": ("numpy", ()),
    "matplotlib": ("matplotlib", ()),
    "pandas": ("pandas", ()),
    "imageio": ("imageio", ()),
    "wandb": ("wandb", ()),
    "tensorboard": ("tensorboard", ()),
    "timm": ("timm", ()),
    "transformers": ("transformers", ()),
    "diffusers": ("diffusers", ()),
    "safetensors": ("safetensors", ()),
    "huggingface_hub": ("huggingface-hub", ()),
    "accelerate": ("accelerate", ()),
    "roma": ("roma", ()),
    "tyro": ("tyro", ()),
    "dearpygui": ("dearpygui", ()),
    "smplx": ("smplx", ()),
    "chumpy": ("chumpy", ()),
    "jaxtyping": ("jaxtyping", ()),
    "iopath": ("iopath", ()),
    "fvcore": ("fvcore", ()),
    "decord": ("decord", ()),
    "rich": ("rich", ()),
    "numba": ("numba", ()),
    "resampy": ("resampy", ()),
    "soundfile": ("soundfile", ()),
    "librosa": ("librosa", ()),
    "python_speech_features": ("python_speech_features", ()),
    "mediapipe": ("mediapipe", ()),
    "pymeshlab": ("pymeshlab", ()),
    "pysdf": ("pysdf", ()),
    "rembg": ("rembg", ()),
    "kiui": ("kiui", ()),
    "xatlas": ("xatlas", ()),
    "pygltflib": ("pygltflib", ()),
    "packaging": ("packaging", ()),
    "requests": ("requests", ()),
    "pytorch_msssim": ("pytorch-msssim", ()),
    "natsort": ("natsort", ()),
    "termcolor": ("termcolor", ()),
    "easydict": ("easydict", ()),
    "h5py": ("h5py", ()),
    "networkx": ("networkx", ()),
    "gdown": ("gdown", ()),
    "torchmetrics": ("torchmetrics", ()),
    "mmengine": ("mmengine", ("mmengine-lite",)),
    "mmcv": ("mmcv", ("mmcv-full", "mmcv-lite")),
    "tensorflow": ("tensorflow", ("tensorflow-gpu", "tensorflow-cpu")),
    "plotly": ("plotly", ()),
    "seaborn": ("seaborn", ()),
    "sympy": ("sympy", ()),
    "moviepy": ("moviepy", ()),
    "pycocotools": ("pycocotools", ()),
    "shapely": ("shapely", ()),
    "pyrender": ("pyrender", ()),
    "torchgeometry": ("torchgeometry", ()),
    "nerfacc": ("nerfacc", ()),
    "viser": ("viser", ()),
    "gradio": ("gradio", ()),
}

# Imports a build provides otherwise: the torch table, or envbuilder's extensions.
PROVIDED_BY_TORCH = frozenset({"torch", "torchvision", "torchaudio"})

GUARD_EXCEPTIONS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})


@dataclass(frozen=True)
class Site:
    file: str
    line: int
    guarded: bool  # inside try: … except ImportError

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class PythonFacts:
    imports: dict[str, list[Site]] = field(default_factory=dict)  # top-level module -> where
    usage: dict[str, set[str]] = field(default_factory=dict)  # top-level module -> attributes used
    strings: list[tuple[str, str, int]] = field(default_factory=list)  # (text, file, line)
    unpacked_loads: dict[str, list[int]] = field(default_factory=dict)  # file -> lines of `a, b = torch.load(…)`
    local: set[str] = field(default_factory=set)  # module names the tree defines
    unreadable: list[str] = field(default_factory=list)  # files that are not valid Python 3
    texts: dict[str, str] = field(default_factory=dict)  # rel -> source text, for the patch finders
    files: int = 0


IMPORT_RE = re.compile(r"^([ \t]*)(?:import|from)[ \t]+[A-Za-z_.]")
TRY_RE = re.compile(r"^([ \t]*)try[ \t]*:")
HANDLER_RE = re.compile(r"^([ \t]*)(except\b[^:]*|else|finally)[ \t]*:")
STRING_RE = re.compile(r"""(["'])([^"'\n]{1,300}?\.(?:mat|pkl|npz|npy))\1""")  # model files (assets.MODELS)
UNPACKED_LOAD_RE = re.compile(
    r"^[ \t]*\(?[ \t]*[\w.]+[ \t]*(?:,[ \t]*[\w.]+[ \t]*)+\)?[ \t]*=[ \t]*torch\.load\(", re.M
)
USAGE_MODULES = frozenset({"mmcv"})  # modules whose attributes a pin rule looks at


@dataclass
class _Try:
    indent: int
    in_body: bool = True
    guards: bool = False


def _handler_guards(clause: str) -> bool:
    names = re.findall(r"[A-Za-z_][\w.]*", clause.removeprefix("except"))
    return not names or any(n.split(".")[-1] in GUARD_EXCEPTIONS for n in names if n != "as")


def _statements(lines: list[str]) -> list[tuple[int, str, list[_Try]]]:
    """(line, import statement text, enclosing try blocks) of a file. The structure comes from
    indentation (a try's body is what is indented under it until its except/else/finally);
    lines inside triple-quoted strings are skipped."""
    out: list[tuple[int, str, list[_Try]]] = []
    tries: list[_Try] = []
    quote: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if quote is not None:
            if quote in line:
                quote = None if line.count(quote) % 2 == 1 else quote
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        expanded = line.expandtabs(8)
        indent = len(expanded) - len(expanded.lstrip())
        handler = HANDLER_RE.match(line)
        while tries and indent <= tries[-1].indent:
            top = tries[-1]
            if handler and indent == top.indent:
                top.in_body = False
                if handler.group(2).startswith("except") and _handler_guards(handler.group(2)):
                    top.guards = True
                break
            tries.pop()
        if TRY_RE.match(line):
            tries.append(_Try(indent))
        elif IMPORT_RE.match(line):
            text, start = line, i
            depth = text.count("(") - text.count(")")
            while (depth > 0 or text.rstrip().endswith("\\")) and i < len(lines):
                text += "\n" + lines[i]
                depth += lines[i].count("(") - lines[i].count(")")
                i += 1
            out.append((start, text, [t for t in tries if t.in_body]))
        for q in ('"""', "'''"):
            if line.count(q) % 2 == 1:
                quote = q
                break
    return out


def read(root: Path, files: list[Path]) -> PythonFacts:
    """Imports of every file (each statement parsed with ast), attribute use of USAGE_MODULES,
    string constants that look like model files, and tuple-unpacked torch.load calls."""
    facts = PythonFacts(local=local_modules(root, files))
    for path in files:
        rel = path.relative_to(root).as_posix()
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            facts.unreadable.append(rel)
            continue
        facts.texts[rel] = text
        facts.files += 1
        lines = text.splitlines()
        aliases: dict[str, str] = {}
        for number, stmt, tries in _statements(lines):
            try:
                tree = ast.parse(textwrap.dedent(stmt).strip())
            except SyntaxError:
                continue
            guarded = any(t.guards for t in tries)
            for node in tree.body:
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        top = alias.name.split(".")[0]
                        facts.imports.setdefault(top, []).append(Site(rel, number, guarded))
                        aliases[alias.asname or top] = top
                        if "." in alias.name:
                            facts.usage.setdefault(top, set()).add(alias.name.split(".")[1])
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    top = node.module.split(".")[0]
                    facts.imports.setdefault(top, []).append(Site(rel, number, guarded))
                    used = facts.usage.setdefault(top, set())
                    if "." in node.module:
                        used.add(node.module.split(".")[1])
                    else:
                        used.update(a.name for a in node.names)
        for local_name, top in aliases.items():
            if top in USAGE_MODULES:
                facts.usage.setdefault(top, set()).update(
                    re.findall(rf"\b{re.escape(local_name)}\.([A-Za-z_]\w*)", text)
                )
        for m in STRING_RE.finditer(text):
            line_start = text.rfind("\n", 0, m.start()) + 1
            if text[line_start : m.start()].lstrip().startswith("#"):
                continue  # a commented-out path is not one the code opens
            facts.strings.append((m.group(2), rel, text.count("\n", 0, m.start()) + 1))
        if "torch.load" in text:
            for m in UNPACKED_LOAD_RE.finditer(text):
                facts.unpacked_loads.setdefault(rel, []).append(text.count("\n", 0, m.start()) + 1)
    return facts


def local_modules(root: Path, files: list[Path]) -> set[str]:
    """Every module name the tree itself could provide (scripts add their folders to sys.path)."""
    names = {p.stem for p in files}
    for p in files:
        rel = p.relative_to(root)
        names.update(rel.parts[:-1])
    return names


def is_stdlib(module: str) -> bool:
    return module in sys.stdlib_module_names or module == "__future__"


def provides(dist: str) -> set[str]:
    """The import names a declared distribution provides (the table, else its own name)."""
    canonical = canonicalize_name(dist)
    names = {
        imp
        for imp, (main, others) in IMPORT_DISTS.items()
        if canonical in {canonicalize_name(d) for d in (main, *others)}
    }
    names.add(canonical.replace("-", "_"))
    names.add(dist.replace("-", "_"))
    return names
