"""A Draft -> a recipe folder (`--recipes DIR` reads it): recipes/<name>.yaml and
extensions/<x>/extension.yaml for each extension envbuilder does not ship. Every guess is a
comment next to its value, the TODOs close the recipe file.

The folder is assembled next to its destination, loaded back with the strict loader (a draft
that does not load is a bug, reported, and nothing is written), and only then moved into
place. Existing files are never overwritten.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import textwrap
from pathlib import Path

from envbuilder.errors import EnvbuilderError, InputError
from envbuilder.new.draft import Draft, ExtensionDraft, PatchDraft
from envbuilder.new.known import TORCH_TABLE
from envbuilder.recipe.catalog import Catalog
from envbuilder.recipe.model import Recipe

WIDTH = 100


class DraftInvalid(EnvbuilderError):
    """`new` produced a recipe its own loader rejects: a bug in envbuilder, not in the input."""


def q(text: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(text, ensure_ascii=False)


def comment(text: str, indent: str = "", prefix: str = "# ") -> list[str]:
    """Wrapped comment lines; a list prefix ("- ") hangs: later lines are indented under it."""
    lines = []
    for para in text.split("\n"):
        lines += textwrap.wrap(
            para, WIDTH - len(indent) - len(prefix), break_long_words=False, break_on_hyphens=False
        ) or [""]
    hang = prefix if not prefix.strip().startswith("-") else " " * len(prefix)
    return [f"{indent}{prefix if i == 0 else hang}{line}".rstrip() for i, line in enumerate(lines)]


def _flow(items: list[str]) -> str:
    return "[" + ", ".join(q(i) for i in items) + "]"


def _patch_lines(patches: list[PatchDraft], indent: str) -> list[str]:
    out = []
    for p in patches:
        out += comment(p.why, indent)
        if p.files is None:
            out.append(f"{indent}- {p.name}")
        else:
            out.append(f"{indent}- use: {p.name}")
            out.append(f"{indent}  files: {_flow(p.files)}")
    return out


def recipe_text(draft: Draft) -> str:
    d = draft
    out: list[str] = []
    src = d.source
    origin = f"{src['git']} @ {src['commit']}" if "git" in src else f"the directory {src['path']}"
    out += comment(
        f"Written by `envbuilder new` from {origin}. Every comment explains a value that was read or "
        "guessed from the tree (files and lines are the upstream ones): check them. What envbuilder "
        "could not decide is the TODO list at the end of this file."
    )
    out.append(f"name: {d.name}")
    out.append(f"summary: {q(d.summary)}")
    if d.license:
        out += comment("guess: the first line of the license file", "")
        out.append(f"license: {q(d.license)}")
    notes = [
        "Written by envbuilder new; not yet built. Extensions: "
        + (", ".join(e.name for e in d.extensions if e.enabled) or "none")
        + ". Run `envbuilder new --try` (or build it) to see whether they compile for the arch."
    ]
    out.append(f"notes: {q(' '.join(notes))}")
    out.append("source:")
    if "git" in src:
        out.append(f"  git: {q(src['git'])}")
        out.append(f"  commit: {q(src['commit'])}")
        if src.get("branch"):
            out.append(f"  branch: {q(src['branch'])}  # the remote's default branch; the commit is its head today")
        missing = [s for s in d.submodules if s["status"] == "missing"]
        if missing:
            out += comment("TODO: a gitlink its remote lacks (see the TODO list). envbuilder does not pick a", "  ")
            out += comment("replacement; to build from another commit, uncomment and choose one:", "  ")
            out.append("  # fallbacks:")
            for s in missing:
                out.append(f"  #   - path: {s['path']}")
                choices = ", ".join(f"{b} {c}" for b, c in sorted(s["branches"].items())) or "a commit you trust"
                out += comment(f"commit: one of {choices}", "  #     ", prefix="")
                out.append(f"  #     why: {q('the gitlink ' + s['commit'] + ' is not in ' + s['url'])}")
        if any(s["status"] == "no-url" for s in d.submodules):
            out.append("  submodules: false  # a gitlink without a URL cannot be fetched (see the TODO list)")
    else:
        out.append(f"  path: {q(src['path'])}")
    out += comment(d.python_why)
    out.append(f"python: {q(d.python)}")
    out.append("torch:")
    out += comment("the torch table of every shipped recipe (recipes/4dgaussians.yaml says why each line is so);", "  ")
    out += comment(
        f"packages: {', '.join(d.torch_packages)} (torchvision/torchaudio only when the code imports them)", "  "
    )
    for tag, table, why in TORCH_TABLE:
        items = [f"torch: {q(table['torch'])}"]
        items += [f"{p}: {q(table[p])}" for p in ("torchvision", "torchaudio") if p in d.torch_packages]
        if "index" in table:
            items.append(f"index: {q(table['index'])}")
        out += comment(why, "  ")
        out.append(f"  {tag}: {{{', '.join(items)}}}")
    out.append("requirements:" if d.requirements else "requirements: []")
    for r in d.requirements:
        if r.why or r.no_build_isolation:
            out.append(f"  - req: {q(r.text)}")
            if r.no_build_isolation:
                out.append("    no_build_isolation: true")
            out.append(f"    why: {q(r.why or 'from ' + (r.origin or 'upstream'))}")
        else:
            out.append(f"  - {q(r.text)}  # {r.origin}")
    if d.dropped:
        out.append("  # not carried over:")
        for text, why in d.dropped:
            out += comment(f"{text}: {why}", "  #   ", prefix="")
    if d.patches:
        out.append("patches:")
        out += _patch_lines(d.patches, "  ")
    enabled = [e for e in d.extensions if e.enabled]
    disabled = [e for e in d.extensions if not e.enabled]
    if enabled or disabled or d.jit:
        out.append("extensions:" if enabled else "extensions: []")
    for e in enabled + disabled:
        what = (
            "shared: envbuilder ships it"
            if e.shared
            else f"new: extensions/{e.name}/extension.yaml, written with this recipe"
        )
        out += comment(f"{what}. {e.why}", "  ")
        for note in e.notes:
            out += comment(note, "  ")
        entry = (
            f"- {{use: {e.name}"
            + (f", path: {q(e.path)}" if e.path not in (None, ".") or (e.path == "." and e.source is None) else "")
            + "}"
        )
        out.append(f"  {entry}" if e.enabled else f"  # {entry}")
    for j in d.jit:
        out += comment(
            f"JIT-only: {j['file']}:{j['line']} builds {j['name'] or 'a module'} from {', '.join(j['sources'][:4])} at first import (see TODO)",
            "  ",
        )
    if d.assets:
        out.append("assets:")
    for a in d.assets:
        out += comment(f"{'found' if a.certain else 'guess'}: {a.why}", "  ")
        out.append(f"  - name: {a.name}")
        out.append(f"    path: {q(a.path)}")
        out.append(f"    kind: {a.kind}")
        out.append("    gated: true")
        out.append(f"    source: {q(a.source)}")
        out.append(f"    register: {q(a.register)}")
        out.append(f"    license: {q(a.license)}")
    if d.notes:
        out.append("")
        out.append("# Notes:")
        for n in d.notes:
            out += comment(n, "#   ", prefix="- ")
    out.append("")
    if d.todos:
        out.append("# TODO (also printed by envbuilder new):")
        for t in d.todos:
            out += comment(t, "#   ", prefix="- ")
    else:
        out.append("# TODO: nothing envbuilder could not decide; build it to check.")
    return "\n".join(out) + "\n"


def extension_text(draft: Draft, e: ExtensionDraft) -> str:
    out: list[str] = []
    out += comment(f"Written by `envbuilder new` for the recipe {draft.name}. {e.why}")
    for note in e.notes:
        out += comment(note)
    out.append(f"name: {e.name}")
    out.append(f"summary: {q(e.summary or e.name)}")
    if e.import_name:
        out.append("# the module its setup.py builds: verify imports it after the build")
        out.append(f"import: {e.import_name}")
    else:
        out.append("# TODO: the module it builds is not a constant in setup.py; write its import name")
        out.append(f"import: {e.name.replace('-', '_')}")
    if e.source:
        out.append("source:")
        out.append(f"  git: {q(e.source['git'])}")
        out.append(f"  commit: {q(e.source['commit'])}")
        if e.source.get("branch"):
            out.append(f"  branch: {q(e.source['branch'])}")
    if e.build_requires and e.build_requires != ["setuptools", "wheel", "ninja"]:
        out.append("# its setup.py imports these at build time")
    if e.build_requires:
        out.append(f"build_requires: {_flow(e.build_requires)}")
    if e.patches:
        out.append("patches:")
        out += _patch_lines(e.patches, "  ")
    else:
        out.append("# no patches: the scan found no missing <cstdint>/<cfloat> and no forced C++ standard below c++20")
    if e.license:
        out.append(f"license: {q(e.license)}")
    out.append("# no probe: envbuilder has no kernel test for this interface; verify checks SASS and the import")
    return "\n".join(out) + "\n"


def files_of(draft: Draft) -> dict[str, str]:
    files = {f"recipes/{draft.name}.yaml": recipe_text(draft)}
    for e in draft.extensions:
        if e.new:
            files[f"extensions/{e.name}/extension.yaml"] = extension_text(draft, e)
    return files


def validate(folder: Path, name: str) -> Recipe:
    """The folder as `--recipes DIR` reads it: the strict loader must accept it."""
    try:
        return Catalog.default([folder]).recipe(name)
    except EnvbuilderError as exc:
        raise DraftInvalid(
            f"envbuilder new wrote a recipe its loader rejects: {exc.message}",
            hint="this is a bug in envbuilder new; please report it with the repository and commit",
        ) from None


def write(draft: Draft, output: Path) -> list[Path]:
    """Write the folder; refuses to overwrite. Returns the files written."""
    files = files_of(draft)
    output = output.resolve()
    clash = [rel for rel in files if (output / rel).exists()]
    if clash:
        raise InputError(
            f"{output / clash[0]} exists; envbuilder new does not overwrite",
            hint="choose another --name or --output, or remove the old files; nothing was written",
        )
    output.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".envbuilder-new-", dir=output))
    try:
        for rel, text in files.items():
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        validate(staging, draft.name)
        written = []
        for rel in files:
            dest = output / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            (staging / rel).replace(dest)
            written.append(dest)
        return written
    finally:
        shutil.rmtree(staging, ignore_errors=True)
