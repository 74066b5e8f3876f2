"""Gated and free assets: where each must go, whether what is there is the real thing, and
putting files in place safely.

Per source tree, <root>/.envbuilder-assets.json records what envbuilder installed (sha256, and
whether the checksum was published or trusted on first use) and which files are stand-ins
written by `assets stub`; every status report marks stand-ins as such.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from envbuilder import proc
from envbuilder.assets.validators import FLAME_VARIANTS, sha, validate
from envbuilder.errors import CommandFailed, EnvbuilderError, InputError, Verdict
from envbuilder.fsutil import copy_atomic, write_json
from envbuilder.recipe.model import Asset, Recipe

REGISTRY = ".envbuilder-assets.json"
PROBLEMS = ("empty", "html-page", "wrong-structure", "checksum-mismatch", "truncated")
Status = Literal["ok", "missing", "empty", "html-page", "wrong-structure", "checksum-mismatch", "truncated"]


@dataclass
class AssetStatus:
    asset: Asset
    path: Path
    status: Status
    detail: str = ""
    stub: bool = False
    trust: str | None = None  # published | first-use | None

    def to_json(self) -> dict[str, Any]:
        a = self.asset
        return {
            "name": a.name,
            "status": self.status,
            "stub": self.stub,
            "detail": self.detail,
            "path": str(self.path),
            "kind": a.kind,
            "gated": a.gated,
            "source": a.source,
            "register": a.register,
            "url": a.url,
            "archive": a.archive,
            "member": a.member,
            "size": a.size,
            "sha256": a.sha256,
            "sha1": a.sha1,
            "git_blob": a.git_blob,
            "license": a.license,
            "needed_by": list(a.needed_by),
            "trust": self.trust,
            "note": a.note,
        }


def destination(asset: Asset, root: Path, home: Path | None = None) -> Path:
    """Where the method reads the asset. With `home`, a path under ~ is taken relative to that
    folder instead: stand-ins for files in the user's home (torch's hub cache) go to an env's own
    stand-in home, never into the real one, where other programs would load them."""
    if asset.path.startswith("~"):
        if home is not None:
            return home / asset.path.removeprefix("~").lstrip("/")
        return Path(asset.path).expanduser()
    return root / asset.path


def in_home(asset: Asset) -> bool:
    return asset.path.startswith("~")


@dataclass
class Registry:
    path: Path
    installed: dict[str, dict[str, Any]] = field(default_factory=dict)
    stubs: dict[str, str] = field(default_factory=dict)  # name -> sha256 of the stand-in

    @classmethod
    def load(cls, root: Path) -> Registry:
        path = root / REGISTRY
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError) as exc:
            raise EnvbuilderError(
                f"{path} is unreadable ({exc})",
                hint=f"delete {path}; installed assets are then re-checked from scratch",
            ) from None
        return cls(path, data.get("installed", {}), data.get("stubs", {}))

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, {"installed": self.installed, "stubs": self.stubs}, indent=1)


def check(recipe: Recipe, root: Path, home: Path | None = None) -> list[AssetStatus]:
    return check_assets(recipe.assets, root, recipe.name, home)


def check_assets(wanted: Sequence[Asset], root: Path, recipe: str, home: Path | None = None) -> list[AssetStatus]:
    """Each asset's status in the tree at root (recipe: its name, for the commands we suggest).
    With `home` (an env's stand-in home), a file missing from the user's home is looked for
    there; whatever is found there is a stand-in. A file carrying envbuilder's stand-in marker is
    one, whatever the registry says."""
    registry = Registry.load(root)
    statuses = []
    for asset in wanted:
        path = destination(asset, root)
        if not path.is_file() and home is not None and in_home(asset) and destination(asset, root, home).is_file():
            path = destination(asset, root, home)
        record = registry.installed.get(asset.name, {})
        if not path.is_file():
            statuses.append(AssetStatus(asset, path, "missing", _where_to_get(asset, recipe)))
            continue
        trusted = record.get("sha256") if record.get("trust") == "first-use" else None
        finding = validate(path, asset, trusted)
        stub = finding.status == "ok" and (
            bool(finding.facts.get("stand_in"))
            or (asset.name in registry.stubs and sha(path, "sha256") == registry.stubs[asset.name])
        )
        status = cast(Status, finding.status)
        statuses.append(AssetStatus(asset, path, status, finding.detail, stub=stub, trust=record.get("trust")))
    return statuses


def _where_to_get(asset: Asset, recipe: str) -> str:
    if asset.gated:
        return f"register at {asset.register}, download {asset.archive or Path(asset.path).name} from {asset.source}"
    if asset.url:
        return f"free download: envbuilder assets fetch {recipe}"
    return f"get it from {asset.source}"


def verdict(statuses: Sequence[AssetStatus]) -> Verdict:
    """failed when something present is broken, blocked when something is missing, else ok. A
    stand-in is missing: it lets the smoke run go through the method's code, and proves nothing."""
    if any(s.status in PROBLEMS for s in statuses):
        return "failed"
    if any(s.status == "missing" or s.stub for s in statuses):
        return "blocked"
    return "ok"


def build_verdict(statuses: Sequence[AssetStatus]) -> Verdict:
    """verdict for `build`: a missing free download that no smoke step needs (a real data set,
    for training beyond the smoke run) is reported but does not make a ready env blocked."""
    return verdict(
        [s for s in statuses if (s.status != "missing" and not s.stub) or s.asset.gated or s.asset.needed_by]
    )


def stand_ins(statuses: Sequence[AssetStatus]) -> dict[str, list[str]]:
    """smoke step -> the assets it would run on as stand-ins (not proven with the real file)."""
    found: dict[str, list[str]] = {}
    for s in statuses:
        if s.status == "ok" and s.stub:
            for step in s.asset.needed_by:
                found.setdefault(step, []).append(s.asset.name)
    return found


def blocked_steps(statuses: list[AssetStatus]) -> dict[str, list[str]]:
    """smoke step -> the assets it lacks (missing or broken)."""
    blocked: dict[str, list[str]] = {}
    for s in statuses:
        if s.status != "ok":
            for step in s.asset.needed_by:
                blocked.setdefault(step, []).append(s.asset.name)
    return blocked


# --- install ---------------------------------------------------------------------------------------


@dataclass
class Installed:
    asset: Asset
    source: Path
    path: Path
    trust: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.asset.name,
            "from": str(self.source),
            "path": str(self.path),
            "trust": self.trust,
            "detail": self.detail,
        }


def _candidates(recipe: Recipe, file: Path) -> tuple[list[Asset], set[str]]:
    """Assets this file may be (by checksum, then name, then every other) and the names of those
    it matched by checksum or name (structure alone cannot tell FLAME variants apart)."""
    by_name = [a for a in recipe.assets if file.name in (Path(a.path).name, a.archive)]
    digests = {"sha256": sha(file, "sha256"), "sha1": sha(file, "sha1")}
    by_sum = [
        a
        for a in recipe.assets
        if (a.sha256 and a.sha256 == digests["sha256"]) or (a.sha1 and a.sha1 == digests["sha1"])
    ]
    rest = [a for a in recipe.assets if a not in by_name and a not in by_sum]
    return list(dict.fromkeys(by_sum + by_name + rest)), {a.name for a in by_sum + by_name}


def _wrong_flame_variant(file: Path, asset: Asset) -> str | None:
    """FLAME 2020, 2023 and 2023-no-jaw look alike inside; their names are the only signal."""
    wanted = Path(asset.member or asset.path).name
    given = FLAME_VARIANTS.get(file.name)
    if asset.kind == "flame-pkl" and given and file.name != wanted:
        expected = FLAME_VARIANTS.get(wanted, wanted)
        return f"{file.name} is {given}; this method needs {expected} ({wanted}{' from ' + asset.archive if asset.archive else ''})"
    return None


def install(recipe: Recipe, root: Path, files: list[Path]) -> tuple[list[Installed], list[str]]:
    """Identify, validate and place each file; returns what was installed and warnings."""
    registry = Registry.load(root)
    done: list[Installed] = []
    warnings: list[str] = []
    for file in files:
        if not file.is_file():
            raise InputError(f"{file}: no such file")
        placed = None
        reasons: list[str] = []
        candidates, named = _candidates(recipe, file)
        with tempfile.TemporaryDirectory(prefix="envbuilder-asset-") as tmp:
            for asset in candidates:
                member = _member_of(file, asset, Path(tmp))
                source = member or file
                wrong = _wrong_flame_variant(source, asset)
                if wrong:
                    reasons.insert(0, f"{asset.name}: wrong FLAME version: {wrong}")
                    continue
                if asset.kind == "flame-pkl" and asset.name not in named and member is None:
                    reasons.append(
                        f"{asset.name}: a FLAME model can only be recognised by its name ({Path(asset.path).name})"
                    )
                    continue
                finding = validate(source, asset)
                if finding.status != "ok":
                    reasons.append(f"{asset.name}: {finding.status} ({finding.detail})")
                    continue
                if finding.facts.get("stand_in"):
                    reasons.insert(0, f"{asset.name}: {file} is an envbuilder stand-in, not the real file")
                    continue
                dest = destination(asset, root)
                copy_atomic(source, dest)
                digest = sha(dest, "sha256")
                published = bool(asset.sha256 or asset.sha1 or asset.git_blob)
                trust = "published" if published else "first-use"
                if not published:
                    warnings.append(
                        f"{asset.name}: no published checksum; trusting this file's sha256 {digest[:12]}… from now on"
                    )
                registry.installed[asset.name] = {
                    "sha256": digest,
                    "trust": trust,
                    "from": str(file),
                    "installed": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                }
                registry.stubs.pop(asset.name, None)
                placed = Installed(asset, file, dest, trust, finding.detail)
                break
        if placed is None:
            raise EnvbuilderError(
                f"{file} is none of {recipe.name}'s assets; not installed",
                hint="; ".join(reasons[:4]) or "the recipe has no assets",
            )
        done.append(placed)
    registry.save()
    return done, warnings


def _member_of(file: Path, asset: Asset, tmp: Path) -> Path | None:
    """The asset extracted from a downloaded archive (FLAME2023.zip -> flame2023_no_jaw.pkl)."""
    if not (asset.archive and asset.member and zipfile.is_zipfile(file)):
        return None
    try:
        with zipfile.ZipFile(file) as zf:
            names = zf.namelist()
            match = next((n for n in names if n == asset.member or n.endswith("/" + asset.member)), None)
            if match is None:
                return None
            target = tmp / Path(match).name
            with zf.open(match) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            return target
    except (zipfile.BadZipFile, OSError):
        return None


# --- fetch and stubs ---------------------------------------------------------------------------------

STUB_KINDS = (  # stand-ins written from the file layout alone (stubgen.py)
    "flame-pkl",
    "smpl-model",
    "smplx-model",
    "bfm-mat",
    "smplx-j14-regressor",
    "smplx-mano-vertex-ids",
    "smplx-flame-vertex-ids",
)


def fetch(recipe: Recipe, root: Path, cache: Path, progress_for: Any = None) -> list[dict[str, Any]]:
    """Download every free asset with a URL that is not already valid. `progress_for(asset)`
    returns a progress callback (or None)."""
    from envbuilder.assets.fetch import download

    results = []
    for status in check(recipe, root):
        asset = status.asset
        if status.status == "ok" and not status.stub:
            results.append({"name": asset.name, "result": "already present"})
            continue
        if asset.gated or not asset.url:
            results.append(
                {
                    "name": asset.name,
                    "result": "skipped: " + ("gated, download by hand" if asset.gated else "no direct URL"),
                }
            )
            continue
        callback = progress_for(asset) if progress_for else None
        dest = destination(asset, root)
        if asset.archive:
            archive = download(asset.url, cache / "downloads" / asset.name / asset.archive, progress=callback)
            with tempfile.TemporaryDirectory(prefix="envbuilder-asset-") as tmp:
                member = _member_of(archive, asset, Path(tmp))
                if member is None:
                    raise EnvbuilderError(f"{asset.archive} from {asset.url} does not contain {asset.member}")
                _check_or_raise(member, asset)
                copy_atomic(member, dest)
        else:
            download(asset.url, dest, sha256=asset.sha256, sha1=asset.sha1, size=asset.size, progress=callback)
            _check_or_raise(dest, asset, remove=True)
        results.append({"name": asset.name, "result": "downloaded", "path": str(dest)})
    return results


def _check_or_raise(path: Path, asset: Asset, remove: bool = False) -> None:
    finding = validate(path, asset)
    if finding.status != "ok":
        if remove:
            path.unlink(missing_ok=True)
        raise EnvbuilderError(f"downloaded {asset.name} is not valid: {finding.status} ({finding.detail})")


def stub(recipe: Recipe, root: Path, python: Path, home: Path | None = None) -> tuple[list[str], list[str]]:
    """Write stand-ins for missing assets of a known structure (stubgen.py) or with a stand-in
    writer (standin_weights.py, which builds the checkpoint from the method's own code in `root`);
    returns (written, skipped reasons). Assets under ~ get stand-ins only given `home`."""
    registry = Registry.load(root)
    layout, built, skipped = [], [], []
    for status in check(recipe, root, home):
        asset = status.asset
        if status.status == "ok" and not status.stub:
            skipped.append(f"{asset.name}: the real file is present")
        elif status.status == "ok" and status.stub:
            skipped.append(f"{asset.name}: a stand-in is already in place")
        elif in_home(asset) and home is None:
            skipped.append(
                f"{asset.name}: it belongs in your home ({asset.path}), where a stand-in would replace the real file "
                "for every program; `envbuilder smoke --stub-assets` puts one in the env's own stand-in home"
            )
        elif asset.stand_in:
            built.append(asset)
        elif asset.kind in STUB_KINDS:
            layout.append(asset)
        else:
            skipped.append(f"{asset.name}: no stand-in for a {asset.kind} (the method needs the real file)")
    for asset in layout + built:
        destination(asset, root, home).parent.mkdir(parents=True, exist_ok=True)
    if layout:
        request = json.dumps([{"kind": a.kind, "path": str(destination(a, root, home))} for a in layout])
        script = Path(__file__).with_name("stubgen.py")
        _run_writer(python, [str(script)], request, "numpy (and scipy for .mat files)")
    for asset in built:
        script = Path(__file__).with_name("standin_weights.py")
        argv = [str(script), str(asset.stand_in), str(destination(asset, root, home)), "--src", str(root)]
        _run_writer(python, argv, None, f"the method's own packages (torch) for the {asset.stand_in} stand-in")
    for asset in layout + built:
        registry.stubs[asset.name] = sha(destination(asset, root, home), "sha256")
        registry.installed.pop(asset.name, None)
    if layout or built:
        registry.save()
    return [a.name for a in layout + built], skipped


def _run_writer(python: Path, argv: list[str], stdin: str | None, needs: str) -> None:
    try:
        proc.capture([str(python), *argv], stdin=stdin, timeout=1800)
    except CommandFailed as exc:
        last = exc.tail.splitlines()[-1] if exc.tail else f"exit {exc.returncode}"
        raise EnvbuilderError(f"writing stand-ins failed: {last}", hint=f"{python} needs {needs}") from None


def record_rewrite(recipe: Recipe, root: Path, names: list[str], by: str, home: Path | None = None) -> None:
    """A smoke step converted assets in place (CAP4D's fix_flame_pickle turns FLAME's chumpy
    arrays into numpy): trust the converted bytes from now on, as installed or as stand-ins."""
    registry = Registry.load(root)
    for asset in recipe.assets:
        if asset.name not in names:
            continue
        path = destination(asset, root)
        if not path.is_file() and home is not None and in_home(asset):
            path = destination(asset, root, home)
        if not path.is_file():
            continue
        digest = sha(path, "sha256")
        if asset.name in registry.stubs:
            registry.stubs[asset.name] = digest
        elif asset.name in registry.installed:
            registry.installed[asset.name].update(sha256=digest, rewritten_by=by)
    registry.save()
