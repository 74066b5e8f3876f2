"""A tree -> a Draft: its extensions (shared or new), patches, requirements, assets and TODOs."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from envbuilder import patching, scan
from envbuilder.errors import InputError, PatchError
from envbuilder.new import assets as asset_finder
from envbuilder.new import cmake, declared, fingerprint, imports, jit, pins, readme, setup_py
from envbuilder.new.draft import AssetDraft, Draft, ExtensionDraft, PatchDraft, RequirementDraft
from envbuilder.new.index import Index, Target
from envbuilder.new.known import KNOWN_PACKAGES, METHOD_PATCHES, NEWEST_CUDA, NEWEST_TORCH, TARGET_PYTHON, KnownPackage
from envbuilder.new.tree import Reader, Tree
from envbuilder.recipe.catalog import Catalog
from envbuilder.recipe.model import Patch, PatchUse

SKIP_DIRS = frozenset(
    {
        ".git",
        "__pycache__",
        "node_modules",
        ".envbuilder-patches",
        ".venv",
        "venv",
        "site-packages",
        ".eggs",
        ".tox",
        "build",
        "dist",
    }
)
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
LICENSE_RE = re.compile(r"^(licen[cs]e|copying)(\.[a-z]+)?$", re.I)


def recipe_name(text: str) -> str:
    name = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return name if NAME_RE.match(name or "") else "method"


@dataclass
class Files:
    setup_pys: list[Path] = field(default_factory=list)
    cmakes: list[Path] = field(default_factory=list)
    pys: list[Path] = field(default_factory=list)
    projects: list[Path] = field(default_factory=list)  # folders with their own setup.py/pyproject/requirements
    count: int = 0


def walk(root: Path) -> Files:
    out = Files()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info"))
        base = Path(dirpath)
        if base != root and any(
            n in ("setup.py", "pyproject.toml", "setup.cfg") or declared.REQUIREMENTS_RE.match(n) for n in filenames
        ):
            out.projects.append(base)
        for name in sorted(filenames):
            out.count += 1
            if name == "setup.py":
                out.setup_pys.append(base / name)
            if name == "CMakeLists.txt":
                out.cmakes.append(base / name)
            if name.endswith(".py"):
                out.pys.append(base / name)
    return out


def _inside(rel: str, directory: str) -> bool:
    return directory == "." or rel == directory or rel.startswith(directory.rstrip("/") + "/")


def _norm(path: str) -> str:
    parts = [p for p in PurePosixPath(path).parts if p not in (".", "")]
    return PurePosixPath(*parts).as_posix() if parts else "."


def _repo_key(url: str) -> str:
    """host/owner/name, lower case, of a git URL (git+https://…@ref#subdirectory=… too)."""
    url = url.removeprefix("git+")
    if re.match(r"^[^/:]+@[^:]+:", url):
        host, path = url.split("@", 1)[1].split(":", 1)
    else:
        parts = urlsplit(url)
        host, path = parts.hostname or "", parts.path
    path = path.split("@")[0].strip("/").removesuffix(".git")
    return f"{host}/{path}".lower()


def _vcs_parts(text: str) -> tuple[str | None, str, str | None, str | None]:
    """(name, clone URL, ref, subdirectory) of 'name @ git+URL@ref#subdirectory=x' or 'git+URL…'."""
    name = None
    if " @ " in text or re.match(r"^[A-Za-z0-9_.-]+\s*@\s*git\+", text):
        name, _, text = (p.strip() for p in text.partition("@"))
    url = text.removeprefix("git+")
    sub = None
    if "#" in url:
        url, _, fragment = url.partition("#")
        m = re.search(r"subdirectory=([^&]+)", fragment)
        sub = m.group(1) if m else None
        m = re.search(r"egg=([^&]+)", fragment)
        name = name or (m.group(1) if m else None)
    ref = None
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[-1]:
        head, _, ref = rest.rpartition("@")
        url = f"{scheme}://{head}"
    return name, url, ref, sub


class Analysis:
    def __init__(
        self, tree: Tree, name: str, index: Index, scratch: Path, mirror: Path | None, catalog: Catalog
    ) -> None:
        self.tree = tree
        self.root = tree.root
        self.name = name
        self.index = index
        self.scratch = scratch
        self.mirror = mirror
        self.catalog = catalog
        self.target = Target(Version(TARGET_PYTHON), os.uname().machine if hasattr(os, "uname") else "x86_64")
        facts: dict[str, Any] = {
            "cuda": Version(NEWEST_CUDA),
            "torch": Version(NEWEST_TORCH),
            "python": Version(TARGET_PYTHON),
            "gcc": None,
            "arch": [Version("12.0")],
        }
        self.patch_context = patching.PatchContext(facts=facts, cxx_standard="c++20")
        self.draft = Draft(
            name=name,
            summary="",
            license=None,
            source={},
            python=TARGET_PYTHON,
            python_why="",
            torch_packages=["torch"],
        )
        self.extension_dirs: list[str] = []  # directories whose code is an extension's, not the method's
        self.extension_imports: set[str] = set()

    # --- small helpers ------------------------------------------------------------------------

    def rel(self, path: Path) -> str:
        return path.resolve().relative_to(self.root.resolve()).as_posix()

    def patch(self, name: str) -> Patch:
        return self.catalog.patch(name)

    def verify(self, root: Path, patch: Patch, files: tuple[str, ...] | None) -> tuple[str, str]:
        """(status, detail) of one patch use on root: apply, already applied, skipped, or error."""
        use = PatchUse(patch=patch, files=files or ())
        if patch.kind == "replace" and patch.check:
            # the engine applies a replace whenever its count matches; a file that already holds
            # the fix (torch.load(…, weights_only=False)) must not get it twice
            try:
                texts = [p.read_text(encoding="utf-8", errors="replace") for p in patching.targets(root, use)]
            except PatchError as exc:
                return "error", exc.message
            if any(patch.check in t for t in texts):
                return "already applied", ""
        try:
            outcome = patching.compute(root, [use], self.patch_context)[0]
        except PatchError as exc:
            return "error", exc.message
        except OSError as exc:
            return "error", str(exc)
        return outcome.status, ", ".join(c.path for c in outcome.changes)

    # --- the whole analysis -------------------------------------------------------------------

    def run(self) -> Draft:
        files = walk(self.root)
        self.draft.files_read = files.count
        self._source()
        setups = [setup_py.analyse(p, self.root) for p in files.setup_pys]  # a broken setup.py stops here
        every_command = readme.read(self.root, {self.tree.name, self.name})
        commands = [c for c in every_command if not c.optional]
        for c in every_command:
            if c.optional and c.kind not in ("clone", "conda", "python"):
                self.draft.todo(
                    f"{c.where} ({c.section!r}) installs {c.target}: looks like a tool for one stage, not the set-up; not added"
                )
        root_setup = next((s for s in setups if s.directory == "."), None)
        decl = declared.read(
            self.root,
            commands,
            [(r, f"{root_setup.file}:{root_setup.setup_line or 1}") for r in root_setup.install_requires]
            if root_setup
            else [],
            [(root_setup.python_requires, root_setup.file)] if root_setup and root_setup.python_requires else [],
        )
        for problem in decl.problems:
            self.draft.todo(problem)
        self.facts = imports.read(self.root, files.pys)
        self.projects = sorted({self.rel(p) for p in files.projects} | {s.path for s in self.tree.submodules})
        vendored = [d for d in self.projects if not any(_inside(d, e) and d != e for e in self.projects)]
        if vendored:
            self.draft.notes.append(
                "folders with their own setup.py/pyproject.toml/requirements (vendored projects, submodules) are not the "
                "method's own code: their imports are not checked against the requirements and their model files are "
                "not assets: "
                + ", ".join(vendored[:10])
                + (f" and {len(vendored) - 10} more" if len(vendored) > 10 else "")
            )
        if self.facts.unreadable:
            shown = ", ".join(self.facts.unreadable[:5])
            more = f" and {len(self.facts.unreadable) - 5} more" if len(self.facts.unreadable) > 5 else ""
            self.draft.notes.append(f"not valid Python 3, not read: {shown}{more}")
        self._summary()
        self._python(decl)
        self._submodules()
        jits = self._jit(files.pys)
        self._tree_extensions(setups, decl, jits)
        self._cmake(files.cmakes)
        self._external(decl, commands)
        self._requirements(decl)
        self._method_patches()
        self._assets()
        self._torch()
        return self.draft

    # --- source, summary, python --------------------------------------------------------------

    def _source(self) -> None:
        t = self.tree
        if t.url is None:
            self.draft.source = {"path": str(t.path)}
        else:
            self.draft.source = {"git": t.url, "commit": t.commit, "branch": t.branch}
        self.draft.notes += t.notes

    def _summary(self) -> None:
        docs = readme.doc_files(self.root)
        title = None
        for doc in docs:
            if doc.name.lower().startswith("readme"):
                for line in doc.read_text(encoding="utf-8", errors="replace").splitlines():
                    m = re.match(r"^#+\s+(.+?)\s*#*$", line.strip()) or re.match(r"^<h1[^>]*>(.+?)</h1>", line.strip())
                    if m:
                        title = re.sub(
                            r"<[^>]+>|\[([^\]]*)\]\([^)]*\)|[*_`]", lambda x: x.group(1) or "", m.group(1)
                        ).strip()
                        if title:
                            break
                break
        self.draft.summary = (
            f"{title} (recipe written by envbuilder new)"
            if title
            else f"{self.tree.name} (recipe written by envbuilder new)"
        )
        if not title:
            self.draft.todo("summary: no README title found; write one line about the method")
        found = _license_line(self.root, 120)
        if found:
            first, name = found
            self.draft.license = f"{first} ({name})" if first else f"see {name}"
        if self.draft.license is None:
            self.draft.todo(
                "license: no LICENSE file in the tree; find the method's terms (README?) and fill in license"
            )

    def _python(self, decl: declared.Declarations) -> None:
        asked = ", ".join(f"{p} ({w})" for p, w in decl.python[:3])
        self.draft.python_why = (
            f"upstream asks for {asked}; " if asked else ""
        ) + f"{TARGET_PYTHON} is what the torch table's CUDA 12.8/13.0 wheels and every shipped recipe use"

    # --- submodules ---------------------------------------------------------------------------

    def _submodules(self) -> None:
        self.draft.submodules = [s.to_json() for s in self.tree.submodules]
        for sub in self.tree.submodules:
            if sub.status == "missing":
                have = (
                    ", ".join(f"{b} {c[:12]}" for b, c in sorted(sub.branches.items()))
                    or "none that envbuilder could list"
                )
                read = f"; {sub.read_from} was read instead, for this draft only" if sub.read_from else ""
                if sub.declared_branch and sub.declared_branch not in sub.branches:
                    read += f" (.gitmodules names branch {sub.declared_branch}, which the remote does not have)"
                self.draft.todo(
                    f"submodule {sub.path} @ {sub.commit} is not in {sub.url} ({sub.message}). The remote's branches: {have}{read}. "
                    f"Fetch the commit into your mirror, or add a source.fallbacks entry for {sub.path} with the commit you choose "
                    "(envbuilder does not replace a gitlink by itself)"
                )
            elif sub.status == "no-url":
                self.draft.todo(
                    f"submodule {sub.path} @ {sub.commit[:12]} has no URL in .gitmodules: the build cannot fetch it; set source.submodules: false or fix .gitmodules upstream"
                )
        for path in self.tree.listed_only:
            self.draft.notes.append(
                f".gitmodules lists {path} without a gitlink: it is not part of the tree at this commit"
            )

    def _submodule_of(self, directory: str) -> Any:
        return next((s for s in self.tree.submodules if _inside(directory, s.path)), None)

    # --- extensions in the tree ---------------------------------------------------------------

    def _jit(self, pys: list[Path]) -> list[jit.JitBackend]:
        found: list[jit.JitBackend] = []
        for path in pys:
            if path.name == "setup.py":
                continue
            try:
                found += jit.find(path, self.root)
            except InputError as exc:
                self.draft.todo(f"{exc.message} (a torch JIT loader, not read)")
        return found

    def _installed_by(self, s: setup_py.SetupPy, decl: declared.Declarations) -> list[str]:
        reasons = []
        for d in decl.items:
            if d.kind == "local" and _norm(d.text) == s.directory:
                reasons.append(f"{d.where} installs it")
        sub = self._submodule_of(s.directory)
        if sub is not None:
            reasons.append(f"it is the submodule {sub.path}")
        if s.directory == ".":
            reasons.append("it is the repository's own setup.py")
        tops = {e.name.split(".")[0] for e in s.extensions if e.name} | ({s.package} if s.package else set())
        tops |= {p.split(".")[0] for p in s.packages}
        own = set(self._own_files())
        for top in sorted(tops):
            sites = [x for x in self.facts.imports.get(top, []) if x.file in own]
            if sites:
                reasons.append(f"{sites[0].where} imports {top}")
                break
        return reasons

    def _tree_extensions(
        self, setups: list[setup_py.SetupPy], decl: declared.Declarations, jits: list[jit.JitBackend]
    ) -> None:
        for s in sorted((s for s in setups if s.extensions), key=lambda s: s.directory):
            self.extension_dirs.append(s.directory)
            directory = self.root / s.directory
            module = s.extensions[0]
            self.extension_imports |= {e.name.split(".")[0] for e in s.extensions if e.name} | (
                {s.package} if s.package else set()
            )
            where = f"{s.file}:{module.line}"
            reasons = self._installed_by(s, decl)
            sub = self._submodule_of(s.directory)
            read_note = (
                f"read from {sub.read_from} (its gitlink {sub.commit[:12]} is missing)"
                if sub is not None and sub.status == "missing"
                else None
            )
            fallbacks = [j for j in jits if _inside(j.file, s.directory)]
            m = fingerprint.match(directory, s, module, self.catalog)
            shared_name = m.extension
            notes = []
            if shared_name is not None:
                ext = self.catalog.extension(shared_name)
                for use in ext.patches:
                    status, detail = self.verify(directory, use.patch, use.files or None)
                    if status == "error":
                        m.failed.append(f"its patch {use.name} would not apply ({detail})")
                    elif status == "already applied":
                        notes.append(
                            f"{use.name}: already fixed in this tree (the shared extension's patch changes nothing)"
                        )
                    elif status == "apply":
                        notes.append(f"{use.name} applies to {detail}")
                shared_name = m.extension
            kinds = ", ".join(sorted({e.kind for e in s.extensions}))
            built = ", ".join(e.name or "?" for e in s.extensions)
            installed = "; ".join(reasons) if reasons else "nothing installs or imports it"
            if shared_name is not None:
                why = f"{where}: {kinds} {built}; {installed}. Fingerprint: {'; '.join(m.passed)}"
                draft = ExtensionDraft(
                    shared_name, s.directory, why, shared=True, import_name=module.name, enabled=bool(reasons)
                )
                self._extra_scan_patches(directory, s.directory, self.catalog.extension(shared_name).patches)
            else:
                name = self._new_name(s.package or PurePosixPath(s.directory).name or self.name)
                like = (
                    f" It looks like the shared {m.candidate.extension}, but {'; '.join(m.failed)}: an entry of its own, since the shared one's probe would not fit it."
                    if m.candidate
                    else ""
                )
                why = f"{where}: {kinds} {built}; {installed}.{like}"
                draft = ExtensionDraft(
                    name,
                    s.directory,
                    why,
                    shared=False,
                    import_name=module.name,
                    summary=f"{kinds} {built} from {self.tree.name}'s {s.directory} (written by envbuilder new)",
                    build_requires=self._build_requires(s),
                    license=self._license_of(directory),
                    enabled=bool(reasons),
                )
                draft.patches = self._scan_patches(directory, [j.file for j in fallbacks], s.directory)
                if len(s.extensions) > 1:
                    notes.append(f"its setup.py builds {len(s.extensions)} modules ({built}); import checks the first")
                if any(e.unknown for e in s.extensions):
                    unknown = [u for e in s.extensions for u in e.unknown]
                    self.draft.todo(
                        f"{s.file}: only running it would tell {'; '.join(unknown[:3])}; check that the build finds its sources"
                    )
                if module.name is None:
                    self.draft.todo(
                        f"{draft.name}: the module {s.file} builds is not a constant; set its import: in extensions/{draft.name}/extension.yaml"
                    )
            draft.fingerprint = {"passed": m.passed, "failed": m.failed}
            for j in fallbacks:
                notes.append(
                    f"{j.file}:{j.line} compiles the same code at run time (torch JIT) when the built module is missing"
                )
            if read_note:
                notes.append(read_note)
                self.draft.todo(
                    f"{draft.name} ({s.directory}) was read from {sub.read_from}, not from its pinned gitlink {sub.commit[:12]}: check it once the commit is available"
                )
            for g in (*s.guesses, *(g for j in fallbacks for g in j.guesses)):
                notes.append(f"guess: {g}")
            draft.notes = notes
            if not reasons:
                self.draft.todo(
                    f"{s.file} builds {built}, but nothing installs or imports it: written commented out; enable it if the method needs it"
                )
            self.draft.extensions.append(draft)
        for j in jits:
            if any(_inside(j.file, d) for d in self.extension_dirs if d != "."):
                continue
            self._jit_only(j)

    def _new_name(self, base: str) -> str:
        stem = recipe_name(base.replace("_", "-"))
        name = stem if stem == self.name or stem.startswith(self.name + "-") else f"{self.name}-{stem}"
        taken = {e.name for e in self.draft.extensions}
        while name in taken or self._shipped_extension(name):
            name += "-x"
        return name

    def _shipped_extension(self, name: str) -> bool:
        try:
            self.catalog.extension(name)
            return True
        except InputError:
            return False

    def _license_of(self, directory: Path) -> str | None:
        found = _license_line(directory, 100)
        return f"{found[0]} ({found[1]}), fetched from upstream" if found else None

    def _build_requires(self, s: setup_py.SetupPy) -> list[str]:
        out = ["setuptools", "wheel", "ninja"]
        local = {p.name for p in (self.root / s.directory).iterdir()} | {
            p.stem for p in (self.root / s.directory).iterdir()
        }
        for module in s.imports:
            if (
                imports.is_stdlib(module)
                or module in ("setuptools", "torch", "distutils", "pkg_resources", "wheel")
                or module in local
            ):
                continue
            dist = imports.IMPORT_DISTS.get(module, (module, ()))[0]
            if dist not in out:
                out.append(dist)
        return out

    def _scan_patches(self, directory: Path, jit_files: list[str], rel_dir: str) -> list[PatchDraft]:
        """cstdint/cfloat from the scan, cxx-standard from the build scripts, each attached only
        when the patch engine says it would change something and applies cleanly."""
        out: list[PatchDraft] = []
        hits = scan.Scanner(directory).scan()
        for kind in ("cstdint", "cfloat"):
            files = sorted({h.file for h in hits if h.kind == kind})
            if not files:
                continue
            first = next(h for h in hits if h.kind == kind)
            status, detail = self.verify(directory, self.patch(kind), tuple(files))
            if status == "apply":
                header = "<cstdint>" if kind == "cstdint" else "<cfloat>"
                out.append(
                    PatchDraft(
                        kind,
                        files,
                        f"scan: {first.file}:{first.line} ({first.text[:70]!r}) uses "
                        f"{'fixed-width integers' if kind == 'cstdint' else 'FLT_MAX and friends'} with no {header} in its include chain",
                    )
                )
            elif status == "error":
                self.draft.todo(f"{rel_dir}: the {kind} patch would not apply ({detail})")
        scripts = [
            "setup.py",
            *(PurePosixPath(f).relative_to(rel_dir).as_posix() if rel_dir != "." else f for f in jit_files),
        ]
        if (directory / "CMakeLists.txt").is_file() and not (directory / "setup.py").is_file():
            scripts.append("CMakeLists.txt")  # with a setup.py, pip never reads the CMake file
        forced = []
        for script in scripts:
            if (directory / script).is_file() and self.verify(directory, self.patch("cxx-standard"), (script,))[
                0
            ] == "apply":
                forced.append(script)
        if forced:
            out.append(
                PatchDraft(
                    "cxx-standard",
                    forced,
                    f"{', '.join(forced)} force a C++ standard below the c++20 that torch {NEWEST_TORCH} needs",
                )
            )
        return out

    def _extra_scan_patches(self, directory: Path, rel_dir: str, covered: tuple[PatchUse, ...]) -> None:
        """Scan hits of a shared extension's tree that its own patches do not cover: recipe-level."""
        targets = {(u.name, t) for u in covered for t in u.targets}
        for p in self._scan_patches(directory, [], rel_dir):
            if p.name == "cxx-standard" and any(u.name == "cxx-standard" for u in covered):
                continue
            files = [f for f in (p.files or []) if (p.name, f) not in targets]
            if files:
                self._add_patch(
                    p.name,
                    [f"{rel_dir}/{f}" if rel_dir != "." else f for f in files],
                    f"{p.why} (in {rel_dir}, beyond the shared extension's own patches)",
                )

    def _add_patch(self, name: str, files: list[str] | None, why: str) -> None:
        for p in self.draft.patches:
            if p.name == name and p.files is not None and files is not None:
                p.files += [f for f in files if f not in p.files]
                return
        self.draft.patches.append(PatchDraft(name, files, why))

    def _jit_only(self, j: jit.JitBackend) -> None:
        self.draft.jit.append(
            {
                "file": j.file,
                "line": j.line,
                "name": j.name,
                "sources": list(j.sources),
                "flags": list(j.flags),
                "unknown": list(j.unknown),
            }
        )
        if self.verify(self.root, self.patch("cxx-standard"), (j.file,))[0] == "apply":
            self._add_patch(
                "cxx-standard", [j.file], f"{j.file}:{j.line} JIT-compiles with a forced C++ standard below c++20"
            )
        dirs = sorted({str(PurePosixPath(s).parent) for s in j.sources if (self.root / s).is_file()})
        for d in dirs:
            directory = self.root / d
            for p in self._scan_patches(directory, [], d):
                if p.name != "cxx-standard":
                    self._add_patch(p.name, [f"{d}/{f}" if d != "." else f for f in p.files or []], p.why)
        self.draft.todo(
            f"{j.file}:{j.line} compiles {j.name or 'a CUDA module'} with torch's JIT at first import: there is no setup.py to "
            "build it ahead of time, so the env needs nvcc (CUDA_HOME) and TORCH_CUDA_ARCH_LIST when the method runs"
        )

    def _cmake(self, cmakes: list[Path]) -> None:
        for path in cmakes:
            project = cmake.find(path, self.root)
            if project is None or any(_inside(project.directory, d) for d in self.extension_dirs):
                continue
            how = (
                "a setup.py/pyproject.toml next to it drives it"
                if project.buildable
                else "nothing pip can build drives it"
            )
            self.draft.todo(
                f"{project.file}:{project.line} is a CMake project that uses find_package(Torch) ({how}); envbuilder builds "
                "extensions with pip, so add it by hand if the method needs it"
            )

    # --- extensions outside the tree: known packages, README clones, git requirements --------------

    def _known(self, text: str) -> KnownPackage | None:
        key = _repo_key(text) if ("://" in text or text.startswith("git@")) else None
        for kp in KNOWN_PACKAGES:
            if key and any(key == g for g in kp.git):
                return kp
            if not key:
                try:
                    if canonicalize_name(Requirement(text).name) in kp.dists:
                        return kp
                except InvalidRequirement:
                    pass
        return None

    def _add_known(self, kp: KnownPackage, why: str) -> None:
        if any(e.name == kp.extension for e in self.draft.extensions):
            return
        ext = self.catalog.extension(kp.extension)
        self.extension_imports |= set(kp.imports)
        self.draft.extensions.append(
            ExtensionDraft(
                kp.extension,
                None,
                f"{why}; envbuilder ships it ({kp.source}, built from {ext.source.url if ext.source else 'source'})",
                shared=True,
                import_name=ext.import_name,
            )
        )

    def _external(self, decl: declared.Declarations, commands: list[readme.Command]) -> None:
        seen: set[str] = set()
        for d in decl.items:
            if d.kind == "requirement":
                kp = self._known(d.text)
                if kp:
                    self._add_known(kp, f"{d.where} installs {d.text}")
            elif d.kind == "vcs":
                kp = self._known(_vcs_parts(d.text)[1])
                if kp:
                    self._add_known(kp, f"{d.where} installs {d.text}")
                elif d.text not in seen:
                    seen.add(d.text)
                    name, url, ref, sub = _vcs_parts(d.text)
                    self._read_external(url, ref, sub, name, d.where, d.text)
            elif d.kind == "url":
                self.draft.dropped.append(
                    (d.text, f"{d.where}: a direct file URL, made for another Python/CUDA; not carried over")
                )
                self.draft.todo(
                    f"{d.where} installs {d.text}: a file built for another Python/CUDA; find the package it is and add it if needed"
                )
            elif d.kind == "local" and not any(_norm(d.text) == e for e in self.extension_dirs):
                self.draft.todo(
                    f"{d.where} installs the local directory {d.text}, which builds no CUDA/C++ extension: a pure-Python package (add its folder to PYTHONPATH or install it by hand)"
                )
        for cmd in commands:
            if cmd.clone is None:
                continue
            kp = self._known(cmd.clone)
            if kp:
                self._add_known(kp, f"{cmd.where}: {cmd.text}")
                continue
            key = f"{cmd.clone}#{cmd.target}"
            if key in seen:
                continue
            seen.add(key)
            if cmd.kind == "clone":
                continue  # a clone alone: only what is built from it counts
            self._read_external(
                cmd.clone,
                None,
                None if cmd.target == "." else cmd.target,
                None,
                cmd.where,
                cmd.text,
                make=cmd.tool == "make",
            )
        own = set(self._own_files())
        for module, all_sites in sorted(self.facts.imports.items()):
            sites = [s for s in all_sites if s.file in own]
            if not sites:
                continue
            for kp in KNOWN_PACKAGES:
                if (
                    module in kp.imports
                    and not all(s.guarded for s in sites)
                    and not any(e.name == kp.extension for e in self.draft.extensions)
                ):
                    first = next(s for s in sites if not s.guarded)
                    self._add_known(kp, f"found by import: {first.where} imports {module}, which nothing declares")

    def _read_external(
        self, url: str, ref: str | None, sub: str | None, name: str | None, where: str, text: str, make: bool = False
    ) -> None:
        reader = Reader(self.mirror)
        slot = self.scratch / f"ext-{len(list(self.scratch.glob('ext-*')))}"
        try:
            repo, commit, branch = reader.remote(url, ref)
            reader.checkout(repo, url, commit, slot)
            inner = Tree(root=slot, origin=url, url=url, commit=commit)
            reader.submodules(inner, slot, url)
        except InputError as exc:
            self.draft.todo(f"{where}: {text}: could not read {url} ({exc.message}); add it by hand")
            if not make:
                req = f"{name or _repo_key(url).rsplit('/', 1)[-1]} @ git+{url}" + (f"@{ref}" if ref else "")
                self.draft.requirements.append(
                    RequirementDraft(
                        req, f"{where} installs it from git; not pinned (the repository could not be read)", where
                    )
                )
            return
        directory = slot / sub if sub else slot
        setup = directory / "setup.py"
        info = setup_py.analyse(setup, slot) if setup.is_file() else None
        pinned = f"{commit[:12]}" + (f" ({ref})" if ref else f" (head of {branch})" if branch else "")
        if info is not None and info.extensions:
            module = info.extensions[0]
            m = fingerprint.match(directory, info, module, self.catalog)
            ext_name = self._new_name(info.package or _repo_key(url).rsplit("/", 1)[-1])
            like = (
                f" It has the interface of the shared {m.extension}, which lives in method trees; this entry has its own source."
                if m.extension
                else ""
            )
            draft = ExtensionDraft(
                ext_name,
                sub or ".",
                f"{where}: {text}. Its setup.py builds {', '.join(e.name or '?' for e in info.extensions)} ({', '.join(sorted({e.kind for e in info.extensions}))}); pinned to {pinned}.{like}",
                shared=False,
                import_name=module.name,
                summary=f"{', '.join(e.name or '?' for e in info.extensions)} from {url} (written by envbuilder new)",
                source={"git": url, "commit": commit, **({"branch": branch} if branch else {})},
                build_requires=self._build_requires(info),
                license=self._license_of(directory),
            )
            draft.patches = self._scan_patches(directory, [], sub or ".")
            self.extension_imports |= {e.name.split(".")[0] for e in info.extensions if e.name} | (
                {info.package} if info.package else set()
            )
            self.draft.extensions.append(draft)
            return
        if make or info is None:
            self.draft.todo(
                f"{where}: {text}: {url} has no setup.py{' at ' + sub if sub else ''} (built with make?); envbuilder cannot build it: add it by hand if the method needs it"
            )
            return
        dist = info.package or name or _repo_key(url).rsplit("/", 1)[-1]
        fragment = f"#subdirectory={sub}" if sub else ""
        jit_note = ""
        if any(jit.find(p, slot) for p in directory.rglob("*.py") if "cpp_extension" in p.read_text(errors="replace")):
            jit_note = "; it compiles CUDA code with torch's JIT at first use, so the env needs nvcc at run time"
            self.draft.todo(
                f"{dist} ({url}) JIT-compiles CUDA code when first used: the env needs nvcc (CUDA_HOME) and TORCH_CUDA_ARCH_LIST at run time"
            )
        self.draft.requirements.append(
            RequirementDraft(
                f"{dist} @ git+{url}@{commit}{fragment}",
                f"{where} installs it from git ({text}); pinned to {pinned}, a pure-Python package{jit_note}",
                where,
            )
        )
        self.extension_imports |= {dist.replace("-", "_"), *(p.split(".")[0] for p in info.packages)}

    # --- requirements -------------------------------------------------------------------------

    def _requirements(self, decl: declared.Declarations) -> None:
        merged: dict[str, dict[str, Any]] = {}
        local_packages = self.extension_imports
        for d in decl.items:
            if d.kind != "requirement":
                continue
            req = Requirement(d.text)
            name: str = canonicalize_name(req.name)
            if self._known(d.text) or name.replace("-", "_") in local_packages:
                continue
            entry = merged.setdefault(name, {"req": req, "wheres": [], "origin": d.origin, "options": set()})
            entry["wheres"].append(d.where)
            entry["options"] |= set(d.options)
            if req.extras - entry["req"].extras:
                entry["req"] = Requirement(
                    str(entry["req"]).replace(
                        entry["req"].name,
                        f"{entry['req'].name}[{','.join(sorted(entry['req'].extras | req.extras))}]",
                        1,
                    )
                )
            if req.specifier and str(req.specifier) != str(entry["req"].specifier):
                base = entry["req"]
                extras = f"[{','.join(sorted(base.extras | req.extras))}]" if base.extras | req.extras else ""
                marker = f"; {req.marker}" if req.marker else ""
                entry["req"] = Requirement(f"{base.name}{extras}{req.specifier}{marker}")
        declared_names = set(merged)
        undeclared = self._undeclared(declared_names)
        for name, (found, where) in undeclared.items():
            merged[name] = {
                "req": found,
                "wheres": [where],
                "origin": "import",
                "options": set(),
                "found_by_import": True,
            }
        facts = pins.Facts(usage={k: set(v) for k, v in self.facts.usage.items()}, names=set(merged))
        checks = []
        for entry in merged.values():
            rule = pins.rule_for(entry["req"], entry["origin"], facts)
            if rule is None:
                checks.append(entry["req"].name)
        pins.prefetch(self.index, checks)
        for entry in merged.values():
            req = entry["req"]
            where = ", ".join(entry["wheres"][:3])
            rule = pins.rule_for(req, entry["origin"], facts)
            outcome = (
                pins.apply_rule(rule, req, where, facts)
                if rule
                else pins.check_wheels(req, where, self.index, self.target)
            )
            for text, why in outcome.requirements:
                found_by = (
                    "found by import: " + where + " (not declared upstream)" if entry.get("found_by_import") else None
                )
                nbi = outcome.no_build_isolation or "--no-build-isolation" in entry["options"]
                why_text = "; ".join(w for w in (found_by, why) if w) or None
                if any(r.text == text for r in self.draft.requirements):
                    continue
                self.draft.requirements.append(RequirementDraft(text, why_text, where, nbi))
            if outcome.dropped:
                self.draft.dropped.append((f"{req} ({where})", outcome.dropped))
            if outcome.todo:
                self.draft.todo(outcome.todo)
            if outcome.patch:
                self._pin_patch(outcome.patch)

    def _undeclared(self, declared_names: set[str]) -> dict[str, tuple[Requirement, str]]:
        """Imports the code makes that nothing declares: added when the table knows the package."""
        provided: set[str] = set()
        for name in declared_names:
            provided |= imports.provides(name)
        out: dict[str, tuple[Requirement, str]] = {}
        unknown: list[str] = []
        optional: list[str] = []
        own = set(self._own_files())
        for module, sites in sorted(self.facts.imports.items()):
            sites = [s for s in sites if s.file in own]
            if (
                not sites
                or imports.is_stdlib(module)
                or module in self.facts.local
                or module in imports.PROVIDED_BY_TORCH
            ):
                continue
            if (
                module in provided
                or module in self.extension_imports
                or any(module in kp.imports for kp in KNOWN_PACKAGES)
            ):
                continue
            hard = [s for s in sites if not s.guarded]
            if not hard:
                optional.append(f"{module} ({sites[0].where})")
                continue
            if module in imports.IMPORT_DISTS:
                dist = imports.IMPORT_DISTS[module][0]
                out[canonicalize_name(dist)] = (Requirement(dist), hard[0].where)
            else:
                unknown.append(f"{module} ({hard[0].where})")
        if unknown:
            self.draft.todo(
                "imported but not declared, not in the tree, and not a package envbuilder can name: "
                + ", ".join(unknown[:12])
                + (f" and {len(unknown) - 12} more" if len(unknown) > 12 else "")
                + "; add the requirements that provide them"
            )
        if optional:
            self.draft.notes.append(
                "optional imports (inside try/except ImportError), not added: " + ", ".join(optional[:12])
            )
        return out

    def _pin_patch(self, name: str) -> None:
        if any(p.name == name for p in self.draft.patches):
            return
        patch = self.patch(name)
        self._find_text_patch(patch, "rule mmcv-config")

    # --- method-level patches -----------------------------------------------------------------

    def _method_files(self) -> list[str]:
        """Python files outside the extensions' folders (vendored projects included: their bugs are real)."""
        return [rel for rel in self.facts.texts if not any(_inside(rel, d) for d in self.extension_dirs if d != ".")]

    def _own_files(self) -> list[str]:
        """The method's own Python files: outside every vendored project, submodule and extension."""
        if not hasattr(self, "_own"):
            self._own = [rel for rel in self.facts.texts if not any(_inside(rel, d) for d in self.projects)]
        return self._own

    def _find_text_patch(self, patch: Patch, why: str) -> None:
        assert patch.find is not None
        pattern = re.compile(patch.find, re.MULTILINE) if patch.regex else None
        candidates = [
            rel
            for rel in self._method_files()
            if (pattern.search(self.facts.texts[rel]) if pattern else patch.find in self.facts.texts[rel])
        ]
        self._attach(patch, candidates, why)

    def _attach(self, patch: Patch, candidates: list[str], why: str) -> None:
        files = []
        for rel in candidates:
            status, detail = self.verify(self.root, patch, (rel,))
            if status == "apply":
                files.append(rel)
            elif status == "error":
                self.draft.todo(
                    f"patch {patch.name} fits {rel} only partly ({detail}); fix that file by hand or write a patch for it"
                )
        if not files:
            return
        same = sorted(files) == sorted(patch.files)
        self._add_patch(patch.name, None if same else files, f"{why}: found in {', '.join(files[:4])}")

    def _method_patches(self) -> None:
        for rule in METHOD_PATCHES:
            patch = self.patch(rule.patch)
            if rule.finder == "find-text":
                self._find_text_patch(patch, rule.why)
            elif rule.finder == "unpacked-torch-load":
                candidates = sorted(f for f in self.facts.unpacked_loads if f in self._method_files())
                self._attach(patch, candidates, rule.why)

    # --- assets -------------------------------------------------------------------------------

    def _assets(self) -> None:
        method = set(self._own_files())
        strings = [s for s in self.facts.strings if s[1] in method]
        smplx_users = sorted({s.file for s in self.facts.imports.get("smplx", []) if s.file in method})
        smplx_users += sorted(
            f
            for f in method
            if "smplx" in self.facts.texts[f] and ".create(" in self.facts.texts[f] and f not in smplx_users
        )
        found, todos = asset_finder.find(self.root, strings, smplx_users)
        for t in todos:
            self.draft.todo(t)
        for f in found:
            sites = ", ".join(f.sites[:3]) + (f" and {len(f.sites) - 3} more" if len(f.sites) > 3 else "")
            why = f"opened by {sites}" + (f" ({'; '.join(f.notes)})" if f.notes else "")
            self.draft.assets.append(
                AssetDraft(
                    f.name, f.path, f.model.kind, f.model.source, f.model.register, f.model.license, why, f.certain
                )
            )
            if not f.certain:
                self.draft.todo(
                    f"asset {f.name}: {f.path} is a guess (the code opens it relative to where it runs: {sites}); check where it must go"
                )

    # --- torch --------------------------------------------------------------------------------

    def _torch(self) -> None:
        method = set(self._own_files())
        for pkg in ("torchvision", "torchaudio"):
            if any(s.file in method for s in self.facts.imports.get(pkg, [])):
                self.draft.torch_packages.append(pkg)


def analyse(
    tree: Tree, name: str, *, index: Index, scratch: Path, mirror: Path | None = None, catalog: Catalog | None = None
) -> Draft:
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        return Analysis(tree, name, index, scratch, mirror, catalog or Catalog.default()).run()
    finally:
        for slot in scratch.glob("ext-*"):
            shutil.rmtree(slot, ignore_errors=True)


def _license_line(directory: Path, width: int) -> tuple[str, str] | None:
    """The first non-empty line of the folder's licence file (heading marks dropped), and its name."""
    for path in sorted(directory.iterdir()):
        if path.is_file() and LICENSE_RE.match(path.name):
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            first = next((ln.strip() for ln in lines if ln.strip()), "")
            return re.sub(r"^#+\s*", "", first)[:width], path.name
    return None
