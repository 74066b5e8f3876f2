"""Licensed models recognised from the file names and paths the code opens: BFM 2009
(01_MorphableModel.mat), FLAME .pkl models, SMPL and SMPL-X models (also the ones smplx.create
loads by name), MANO. Each becomes a gated asset entry with its registration site; the path is
the one the code reads, evaluated statically (os.path.join of a module constant …)."""

from __future__ import annotations

import ast
import contextlib
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path

from envbuilder.new import pyeval


@dataclass(frozen=True)
class Model:
    family: str
    pattern: re.Pattern[str]  # on the file name
    kind: str  # an envbuilder asset kind (recipe/model.py ASSET_KINDS)
    source: str
    register: str
    license: str


BFM = (
    "https://faces.dmi.unibas.ch/bfm/main.php?nav=1-2&id=downloads",
    "Basel Face Model 2009 (registration, non-commercial)",
)
FLAME = (
    "https://flame.is.tue.mpg.de/download.php",
    "https://flame.is.tue.mpg.de/",
    "FLAME license (registration, non-commercial)",
)
SMPLX = (
    "https://smpl-x.is.tue.mpg.de/download.php",
    "https://smpl-x.is.tue.mpg.de/",
    "SMPL-X license (registration, non-commercial)",
)
SMPL = (
    "https://smpl.is.tue.mpg.de/download.php",
    "https://smpl.is.tue.mpg.de/",
    "SMPL license (registration, non-commercial)",
)
MANO = (
    "https://mano.is.tue.mpg.de/download.php",
    "https://mano.is.tue.mpg.de/",
    "MANO license (registration, non-commercial)",
)

# Sources: the registration pages above; file names as the models' archives ship them (and as
# recipes/talkinggaussian.yaml, cap4d.yaml and disco4d.yaml place them).
MODELS: tuple[Model, ...] = (
    Model("bfm", re.compile(r"^01_MorphableModel\.mat$"), "bfm-mat", BFM[0], BFM[0], BFM[1]),
    Model(
        "flame",
        re.compile(r"^(generic_model|flame20\d\d(_no_jaw)?|FLAME_(NEUTRAL|MALE|FEMALE)|(fe)?male_model)\.pkl$", re.I),
        "flame-pkl",
        *FLAME,
    ),
    Model(
        "flame",
        re.compile(r"^(FLAME_masks|flame_(static|dynamic)_embedding|landmark_embedding)\.(pkl|npy)$", re.I),
        "file",
        *FLAME,
    ),
    Model("smplx", re.compile(r"^SMPLX_(NEUTRAL|MALE|FEMALE)(_2020)?\.(npz|pkl)$", re.I), "smplx-model", *SMPLX),
    Model(
        "smplx",
        re.compile(r"^(SMPLX_to_J14\.pkl|MANO_SMPLX_vertex_ids\.pkl|SMPL-X__FLAME_vertex_ids\.npy)$"),
        "file",
        *SMPLX,
    ),
    Model(
        "smpl",
        re.compile(r"^(SMPL_(NEUTRAL|MALE|FEMALE)|basicmodel_(neutral|m|f)_lbs_10_207_0_v1\.[01]\.0)\.pkl$", re.I),
        "smpl-model",
        *SMPL,
    ),
    Model("mano", re.compile(r"^MANO_(LEFT|RIGHT)\.pkl$"), "file", *MANO),
)

SMPLX_CREATE = re.compile(r"(^|\.)smplx\.(create|SMPLX|SMPL|FLAME)$")
# smplx.create(path, model_type, gender=…, ext=…) opens <path>/<model_type>/<file> (smplx/body_models.py)
MODEL_FILES = {"smplx": ("SMPLX_{}", "npz"), "smpl": ("SMPL_{}", "pkl"), "flame": ("FLAME_{}", "pkl")}


@dataclass
class Found:
    name: str
    path: str  # relative to the root, as the code reads it
    model: Model
    sites: list[str] = field(default_factory=list)  # file:line that open it
    notes: list[str] = field(default_factory=list)  # guesses (an env var read as unset …)
    certain: bool = True  # the path was evaluated, not guessed


def _model(filename: str) -> Model | None:
    return next((m for m in MODELS if m.pattern.match(filename)), None)


def _asset_name(path: str, model: Model) -> str:
    if model.family == "bfm":
        return "bfm2009"
    stem = posixpath.basename(path).rsplit(".", 1)[0].lower().replace("_", "-")
    return re.sub(r"[^a-z0-9.-]+", "-", stem).strip("-.") or model.family


def _parents(tree: ast.Module) -> dict[int, ast.AST]:
    parents: dict[int, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[id(child)] = node
    return parents


class _FileResolver:
    """Evaluates the expressions around an asset's file name in one source file."""

    def __init__(self, path: Path, root: Path) -> None:
        self.root = root.resolve()
        self.path = path
        text = path.read_text(encoding="utf-8", errors="replace")
        self.tree = ast.parse(text)
        self.parents = _parents(self.tree)
        self.evaluator = pyeval.Evaluator(path, root, frozenset())
        with contextlib.suppress(RecursionError, pyeval._Budget):
            self.evaluator.run_module(self.tree)

    def value(self, node: ast.expr) -> object:
        try:
            return self.evaluator._expr(node)
        except (RecursionError, pyeval._Budget, pyeval._Return, pyeval._Break, pyeval._Continue):
            return pyeval.Unknown("too deep")

    def widest(self, constant: ast.Constant) -> str | None:
        """The outermost expression around the constant that evaluates to a path ending in it."""
        name = str(constant.value)
        best: str | None = name
        node: ast.AST = constant
        while id(node) in self.parents:
            parent = self.parents[id(node)]
            if not isinstance(parent, (ast.Call, ast.BinOp, ast.JoinedStr, ast.FormattedValue)):
                break
            if isinstance(parent, ast.Call) and parent.func is node:
                break
            value = self.value(parent)
            if isinstance(value, pyeval.PathValue):
                value = str(value)
            if not isinstance(value, str) or not value.endswith(name):
                if isinstance(parent, ast.FormattedValue):
                    node = parent
                    continue
                break
            best, node = value, parent
        return best

    def constants(self, line: int, text: str) -> list[ast.Constant]:
        return [n for n in ast.walk(self.tree) if isinstance(n, ast.Constant) and n.value == text and n.lineno == line]

    def smplx_creates(self) -> list[tuple[str, int]]:
        """(model file, line) of the smplx.create(path, model_type, gender=…) calls (and SMPLX(…) …)."""
        out = []
        for node in ast.walk(self.tree):
            if not isinstance(node, ast.Call):
                continue
            qual = self.evaluator._qual(node.func)
            m = SMPLX_CREATE.search(qual or "")
            if not m:
                continue
            args = [self.value(a) for a in node.args]
            kwargs = {k.arg: self.value(k.value) for k in node.keywords if k.arg}
            direct = m.group(2) != "create"  # smplx.SMPLX(path): the folder holds the file itself
            model_type = (
                m.group(2).lower() if direct else kwargs.get("model_type", args[1] if len(args) > 1 else "smpl")
            )
            if model_type not in MODEL_FILES:
                continue
            path: object = args[0] if args else kwargs.get("model_path")
            if isinstance(path, pyeval.PathValue):
                path = str(path)
            gender = kwargs.get("gender", "neutral")
            stem, ext = MODEL_FILES[model_type]
            chosen = kwargs.get("ext", ext)
            if isinstance(path, str) and isinstance(gender, str) and isinstance(chosen, str):
                base = path if direct else posixpath.join(path, model_type)
                out.append((posixpath.join(base, f"{stem.format(gender.upper())}.{chosen}"), node.lineno))
        return out


def _relative(path: str, file: Path, root: Path) -> tuple[str | None, bool]:
    """(path relative to the root, certain). Relative paths are tried against the root and the
    opening file's folder; the one whose folder exists wins."""
    root = root.resolve()
    if posixpath.isabs(path):
        full = Path(posixpath.normpath(path))
        return (full.relative_to(root).as_posix(), True) if full.is_relative_to(root) else (None, False)
    for base in (root, file.parent.resolve()):
        full = Path(posixpath.normpath(str(base / path)))
        if full.is_relative_to(root) and full.parent.is_dir():
            return full.relative_to(root).as_posix(), True
    full = Path(posixpath.normpath(str(root / path)))
    return (full.relative_to(root).as_posix(), False) if full.is_relative_to(root) else (None, False)


def find(root: Path, strings: list[tuple[str, str, int]], files_with_smplx: list[str]) -> tuple[list[Found], list[str]]:
    """Gated models the code opens, and TODOs for the ones whose place could not be decided."""
    found: dict[str, Found] = {}
    todos: list[str] = []
    resolvers: dict[str, _FileResolver | None] = {}

    def resolver(rel: str) -> _FileResolver | None:
        if rel not in resolvers:
            try:
                resolvers[rel] = _FileResolver(root / rel, root)
            except (SyntaxError, OSError, ValueError, RecursionError):
                resolvers[rel] = None
        return resolvers[rel]

    root_prefix = str(root.resolve()) + "/"
    bare: dict[str, list[str]] = {}

    def add(path: str, file_rel: str, line: int, model: Model, certain: bool, notes: list[str]) -> None:
        notes = [n.replace(root_prefix, "") for n in notes]
        entry = found.get(path)
        if entry is None:
            name = _asset_name(path, model)
            while any(f.name == name for f in found.values()):
                name += "-2"
            entry = found[path] = Found(name, path, model, certain=certain)
        entry.sites.append(f"{file_rel}:{line}")
        entry.notes += [n for n in notes if n not in entry.notes]

    for text, file_rel, line in strings:
        model = _model(posixpath.basename(text))
        if model is None:
            continue
        r = resolver(file_rel)
        value = text
        notes: list[str] = []
        if r is not None:
            for constant in r.constants(line, text):
                value = r.widest(constant) or text
            notes = [g.split(": ", 1)[-1] for g in r.evaluator.guesses if "environment variable" in g]
        if "/" not in value:
            # the folder is a variable only running the code would tell (a config, an argument)
            bare.setdefault(model.family, []).append(f"{value} ({file_rel}:{line})")
            continue
        rel, certain = _relative(value, root / file_rel, root)
        if rel is None:
            todos.append(
                f"{file_rel}:{line} opens {value}, outside the tree: put the {model.family.upper()} file where the code expects it and add an asset entry"
            )
            continue
        add(rel, file_rel, line, model, certain, notes)
    for file_rel in files_with_smplx:
        r = resolver(file_rel)
        if r is None:
            continue
        notes = [g.split(": ", 1)[-1] for g in r.evaluator.guesses if "environment variable" in g]
        for path, line in r.smplx_creates():
            model = _model(posixpath.basename(path))
            if model is None:
                continue
            rel, certain = _relative(path, root / file_rel, root)
            if rel is None:
                todos.append(
                    f"{file_rel}:{line} loads {posixpath.basename(path)} from {posixpath.dirname(path)}, outside the tree"
                )
                continue
            add(rel, file_rel, line, model, certain, notes)
    for family, names in bare.items():
        unique = list(dict.fromkeys(names))
        shown = ", ".join(unique[:4])
        todos.append(
            f"the code opens {family.upper()} files from a folder only running it would tell: {shown}"
            + (f" and {len(unique) - 4} more" if len(unique) > 4 else "")
            + f"; add gated asset entries (register at {next(m.register for m in MODELS if m.family == family)}) where they must go"
        )
    return list(found.values()), todos
