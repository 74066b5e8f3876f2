"""Locking for an env that sits on a base (a cluster's torch module, an NGC container, a
--system-site-packages venv): the torch the base has, and the versions of everything else it has.

`--torch 2.11.0` pins the torch family's head to the base's torch, so nothing else is chosen for
another torch. `--base FREEZE` turns a `pip freeze` of the base into constraints: where the recipe
allows the base's version, the lock takes it, and the build (which sees the base through
--system-site-packages) finds it installed already, so a bundle need not carry it."""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from envbuilder.errors import InputError, ResolutionFailed
from envbuilder.lock.model import Lock
from envbuilder.lock.resolve import Request

TORCH_FAMILY = ("torch", "torchvision", "torchaudio")


def with_torch(request: Request, version: str) -> Request:
    """The request with torch pinned to `version` (its public part: 2.11.0+cu130 -> 2.11.0, the
    CUDA build comes from the recipe's index)."""
    try:
        public = Version(version).public
    except InvalidVersion:
        raise InputError(f"--torch {version!r} is not a version", hint="e.g. --torch 2.11.0") from None
    torch = []
    for text in request.torch:
        req = Requirement(text)
        if canonicalize_name(req.name) == "torch":
            if req.specifier and not req.specifier.contains(public, prereleases=True):
                raise InputError(f"--torch {version}: the recipe asks for torch{req.specifier}")
            text = f"torch=={public}"
        torch.append(text)
    return replace(request, torch=tuple(torch))


@contextmanager
def base_constraints(freeze: Path) -> Iterator[Path]:
    """A constraints file from a `pip freeze`: exact pins of released versions, without the torch
    family (pinned by --torch) and without what cannot be pinned (editables, URLs, local builds)."""
    try:
        lines = freeze.read_text().splitlines()
    except OSError as exc:
        raise InputError(f"--base {freeze}: {exc.strerror}") from None
    keep = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text or text.startswith("-"):
            continue
        try:
            req = Requirement(text)
        except InvalidRequirement:
            raise InputError(f"{freeze}:{number}: not a pip freeze line: {line!r}") from None
        pins = [s for s in req.specifier if s.operator == "=="]
        if req.url or len(pins) != 1 or "+" in pins[0].version or canonicalize_name(req.name) in TORCH_FAMILY:
            continue
        if not re.fullmatch(r"[0-9][0-9.]*([abrc]+[0-9]+)?(\.post[0-9]+)?", pins[0].version):
            continue
        keep.append(f"{req.name}=={pins[0].version}")
    with tempfile.TemporaryDirectory(prefix="envbuilder-base-") as work:  # gone with the resolution
        out = Path(work) / "base-constraints.txt"
        out.write_text("\n".join(keep) + "\n")
        yield out


def recorded_base(lock: Lock, constraints: Path, freeze: Path) -> Lock:
    """The lock with its resolution naming the freeze it stood on (path as given, sha256), not the
    temporary constraints file made from it: a path that is gone, and another on every run."""
    part = lock.envbuilder
    if not part or not part.resolution:
        return lock
    res = part.resolution
    res = replace(
        res,
        constraints=tuple(c for c in res.constraints if c != str(constraints)),
        base={"freeze": str(freeze), "sha256": hashlib.sha256(freeze.read_bytes()).hexdigest()},
    )
    return replace(lock, envbuilder=replace(part, resolution=res))


def on_base(resolve: Callable[..., Lock], constraints: Path, *, note: Callable[[str], None]) -> Callable[..., Lock]:
    """`resolve` that takes the base's versions as far as the recipe allows: a base pin the
    recipe cannot take (numpy 2.5.2 against numpy<2.3) is named, dropped, and resolved again,
    so the lock (and a bundle) carries that package instead."""

    def resolving(*args: Any, **kwargs: Any) -> Lock:
        for _ in range(MAX_DROPS):
            try:
                return resolve(*args, **kwargs)
            except ResolutionFailed as exc:
                pins = dict(line.split("==", 1) for line in constraints.read_text().split())
                named = [n for n in pins if re.search(rf"\b{re.escape(n)}==", exc.message)]
                if not named:
                    raise
                for name in named:
                    note(f"the base's {name} {pins.pop(name)} does not fit the recipe: the lock takes another")
                constraints.write_text("".join(f"{n}=={v}\n" for n, v in pins.items()))
        return resolve(*args, **kwargs)

    return resolving


MAX_DROPS = 20
