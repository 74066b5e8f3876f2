"""The shared binary cache: built extension wheels as OCI artefacts on a registry or in a folder.

REMOTE is `oci://host[:port]/namespace/name` (a repository on any OCI registry: GHCR, Docker Hub,
Harbor, ECR, a self-hosted distribution) or `file:///path` (a folder every machine mounts).

One artefact per extension wheel (OCI image manifest 1.1, artifact conventions):
  artifactType  application/vnd.envbuilder.extension-wheel.v1
  config        application/vnd.envbuilder.extension-wheel.config.v1+json: the content key, the
                key's inputs (extension, source digest, archs, torch and its CUDA build, Python
                ABI, nvcc, gcc, build variables), the wheel's name, size, sha256 and SASS per .so,
                the recipes that use it and the extension's source (URL, commit)
  layer         the wheel itself (application/vnd.envbuilder.wheel.v1+zip; titled with its
                file name, so `oras pull` writes a usable wheel)
  annotations   dev.envbuilder.* copies of what a listing needs without fetching the config
                (key, extension, recipes, torch, cuda, python, archs, wheel sha256), plus
                org.opencontainers.image.{title,source,revision}
No timestamp is recorded, so two machines pushing the same wheel push byte-identical manifests.

Tag: `ck-<the 64-hex content key>`. The key decides the tag, so `build` finds an artefact with
one request (GET manifests/ck-<key>); a 404 means "compile". The key already covers everything
that changes the wheel's bytes (cache.wheel_key), so nothing else needs to be in the tag.

Nothing unverified is installed (fetch): the manifest's digest; the media types; the config's
digest, its key, the key recomputed from its inputs and the annotated key, all equal to the key
asked for (which the caller computed from its own build inputs); the layer's digest and size;
the wheel's sha256; and a .nv_fatbin with SASS for every requested arch in the wheel's binaries.
Anything else is refused, logged, and answered with None, so the caller compiles.

Publishing (publish) checks the wheel the same way first and refuses a wheel that fails. A tag
that already names an intact artefact is left alone (first writer wins; the wheel is
downloaded and checked to know it is intact). A tag that names a bad artefact is replaced.
Blobs go first and the manifest last, so a push that stops halfway leaves nothing a reader can
see. Two publishers of one key both succeed, and the tag names one intact artefact. Identical
wheels make identical manifests: one artefact. Different wheels (two machines that each
compiled): a publisher checks the tag again just before its manifest goes up and keeps an
artefact that got there first; in a folder the tag is created with link(2), so the first one
wins exactly; a registry has no conditional PUT, so when both manifests go up at the same
moment the last one keeps the tag, and a publisher that sees its own manifest lose the tag
deletes it. One race is left on a registry: a publisher that saw its manifest keep the tag and
returned, then overwritten by one that checked before; its manifest stays, untagged, unfindable
by key, until `garbage-collect --delete-untagged`.

distribution never replaces a blob it already has, even after a DELETE (tested: it assumes its
storage is intact), so a replacement whose wheel has the damaged blob's digest is uploaded
gzip-wrapped (application/vnd.envbuilder.wheel.v1+zip+gzip), which gives it a new digest; an
administrator's `garbage-collect` later drops the damaged blob.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from envbuilder import cache
from envbuilder.errors import (
    ArtefactRefused,
    DigestMismatch,
    EnvbuilderError,
    InputError,
    RegistryAuthError,
    RegistryError,
    RegistryUnavailable,
)
from envbuilder.host.compat import Arch, parse_arch_list

log = logging.getLogger(__name__)

REMOTE_VAR = "ENVBUILDER_CACHE_REMOTE"
INSECURE_VAR = "ENVBUILDER_CACHE_INSECURE"

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
ARTIFACT_TYPE = "application/vnd.envbuilder.extension-wheel.v1"
CONFIG_TYPE = "application/vnd.envbuilder.extension-wheel.config.v1+json"
WHEEL_TYPE = "application/vnd.envbuilder.wheel.v1+zip"
WHEEL_GZIP_TYPE = "application/vnd.envbuilder.wheel.v1+zip+gzip"
CONFIG_SCHEMA = "extension-wheel/1"
TAG_PREFIX = "ck-"
ANNOTATION = "dev.envbuilder."
MAX_CONFIG = 4 * 1024 * 1024
# Repository names (distribution-spec): lower case, separators . _ __ -, path components.
NAME_RE = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*")


class Store(Protocol):
    """What a remote answers: oci.Client (a registry repository) and folderstore.FolderStore."""

    host: str

    def ping(self) -> None: ...
    def blob_exists(self, digest: str) -> bool: ...
    def get_blob(self, digest: str, dest: Path, *, size: int | None = None, progress: Any = None) -> Path: ...
    def push_blob(self, path: Path, digest: str, *, chunk_size: int | None = None, progress: Any = None) -> bool: ...
    def get_manifest(self, reference: str) -> tuple[bytes, str] | None: ...
    def put_manifest(self, reference: str, data: bytes, media_type: str = ..., *, if_absent: bool = ...) -> str: ...
    def delete_manifest(self, digest: str) -> bool: ...
    def tags(self) -> Iterator[str]: ...


@dataclass
class Fetched:
    wheel: Path | None  # the verified wheel in dest, or None (then: compile)
    reason: str  # for the build's notes
    config: dict[str, Any] | None = None  # the artefact's metadata, when fetched
    seconds: float = 0.0
    refused: bool = False  # a check failed (as opposed to: not there, or not reachable)


@dataclass
class Published:
    status: str  # pushed | replaced | already published
    tag: str
    digest: str  # of the manifest the tag names now
    sent_bytes: int = 0
    note: str = ""


@dataclass
class Listed:
    """One artefact as the remote lists it (from its manifest, without downloading the wheel)."""

    tag: str
    key: str
    extension: str
    recipes: list[str]
    archs: str
    torch: str
    cuda: str
    python: str
    wheel: str
    size: int
    digest: str = ""
    annotations: dict[str, str] = field(default_factory=dict)


def tag_for(key: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{64}", key):
        raise InputError(f"not a content key: {key!r} (expected 64 hex digits)")
    return TAG_PREFIX + key


def parse(url: str) -> tuple[str, str, str]:
    """('oci', host, repository) or ('file', '', path); InputError for anything else."""
    if url.startswith("oci://"):
        host, _, repository = url[len("oci://") :].partition("/")
        repository = repository.strip("/")
        if not host or not repository:
            raise InputError(
                f"cache remote {url!r}: expected oci://host[:port]/namespace/name",
                hint="e.g. oci://ghcr.io/your-lab/envbuilder-cache or oci://127.0.0.1:5000/envbuilder/cache",
            )
        if not NAME_RE.fullmatch(repository):
            raise InputError(
                f"cache remote {url!r}: {repository!r} is not a repository name (lower case letters, digits, "
                "'.', '_', '-', components separated by '/')"
            )
        return "oci", host.lower(), repository
    if url.startswith("file://"):
        path = url[len("file://") :]
        if not path.startswith("/"):
            raise InputError(f"cache remote {url!r}: a file:// remote needs an absolute path (file:///shared/cache)")
        return "file", "", path
    raise InputError(
        f"cache remote {url!r}: not oci://host/namespace/name or file:///path",
        hint="a registry: oci://ghcr.io/lab/envbuilder-cache; a shared folder: file:///nfs/envbuilder-cache",
    )


def open_remote(url: str, *, insecure: bool = False, push: bool = False) -> Remote:
    """A remote for REMOTE; credentials come from the environment or ~/.docker/config.json."""
    kind, host, where = parse(url)
    if kind == "file":
        from envbuilder.folderstore import FolderStore

        return Remote(url, FolderStore(Path(where)))
    from envbuilder import credentials, oci

    creds = credentials.for_registry(host)
    return Remote(url, oci.Client(host, where, credentials=creds, insecure=insecure, push=push))


def from_environment(url: str | None = None, *, push: bool = False) -> Remote | None:
    """The remote `build --cache` names, else $ENVBUILDER_CACHE_REMOTE, else None.
    ENVBUILDER_CACHE_INSECURE=1 allows plain HTTP to a registry that is not on loopback."""
    url = url or os.environ.get(REMOTE_VAR)
    if not url:
        return None
    return open_remote(url, insecure=os.environ.get(INSECURE_VAR, "") not in ("", "0"), push=push)


def _canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sass_problem(wheel: Path, archs: tuple[Arch, ...]) -> str | None:
    """Why the wheel cannot run on archs (no CUDA binary, an arch without SASS), or None."""
    try:
        found, missing = cache.wheel_archs(wheel, archs)
    except (OSError, ValueError, EnvbuilderError) as exc:
        return f"its binaries cannot be read ({getattr(exc, 'message', exc)})"
    except Exception as exc:  # zipfile raises BadZipFile and others on damaged archives
        return f"it is not a readable wheel ({exc})"
    if missing:
        return f"no SASS for {missing[0]}"
    if not any(found.values()):
        return "no binary in it holds SASS (.nv_fatbin)"
    return None


def _archs_of(inputs: Mapping[str, Any]) -> tuple[Arch, ...]:
    try:
        return parse_arch_list(str(inputs["archs"]))
    except (KeyError, EnvbuilderError):
        raise ArtefactRefused(f"its key inputs name no arch list ({inputs.get('archs')!r})") from None


@dataclass
class _Built:
    manifest: bytes
    digest: str
    config: bytes
    layer: Path
    layer_digest: str
    layer_type: str


class Remote:
    def __init__(self, url: str, store: Store) -> None:
        self.url = url
        self.store = store

    # --- fetch -------------------------------------------------------------------------------

    def fetch(self, key: str, archs: tuple[Arch, ...], dest: Path, *, progress: Any = None) -> Fetched:
        """The verified wheel for key in dest, or None with the reason (then the caller compiles).
        Auth problems raise (RegistryAuthError, exit 2): they need the user, not a compile."""
        started = time.monotonic()
        tag = tag_for(key)
        dest.mkdir(parents=True, exist_ok=True)
        try:
            found = self.store.get_manifest(tag)
            if found is None:
                return Fetched(None, f"not in {self.url}", seconds=time.monotonic() - started)
            with tempfile.TemporaryDirectory(prefix=".pull-", dir=dest) as tmp:
                wheel, config = self._pull(key, archs, found, Path(tmp), progress)
                final = dest / wheel.name
                os.replace(wheel, final)
        except ArtefactRefused as exc:
            log.warning("refused %s from %s: %s", tag, self.url, exc.message)
            return Fetched(
                None, f"refused {tag} from {self.url}: {exc.message}; compiling instead", refused=True,
                seconds=time.monotonic() - started,
            )  # fmt: skip
        except RegistryAuthError:
            raise
        except RegistryError as exc:  # includes DigestMismatch and RegistryUnavailable
            refused = isinstance(exc, DigestMismatch)
            if refused:
                log.warning("refused %s from %s: %s", tag, self.url, exc.message)
            what = "refused" if refused else "could not fetch"
            return Fetched(
                None, f"{what} {tag} from {self.url}: {exc.message}; compiling instead", refused=refused,
                seconds=time.monotonic() - started,
            )  # fmt: skip
        names = ", ".join(str(a) for a in archs)
        return Fetched(
            final,
            f"fetched {final.name} from {self.url} (verified: digests, sha256, key, SASS for {names})",
            config,
            time.monotonic() - started,
        )

    def _pull(
        self, key: str, archs: tuple[Arch, ...], found: tuple[bytes, str], tmp: Path, progress: Any = None
    ) -> tuple[Path, dict[str, Any]]:
        """Download and check one artefact into tmp; ArtefactRefused (or DigestMismatch) if bad."""
        manifest = _manifest(found[0])
        config_desc, layer = manifest["config"], manifest["layers"][0]
        config_path = self.store.get_blob(config_desc["digest"], tmp / "config.json", size=config_desc["size"])
        config = _config(key, config_path.read_bytes(), manifest)
        wheel_name = config["wheel"]["name"]
        blob = self.store.get_blob(layer["digest"], tmp / "layer", size=layer["size"], progress=progress)
        wheel = tmp / wheel_name
        if layer["mediaType"] == WHEEL_GZIP_TYPE:
            _gunzip(blob, wheel, int(config["wheel"]["size"]))
        else:
            blob.rename(wheel)
        check_wheel(wheel, config["wheel"], archs)
        return wheel, config

    # --- publish -----------------------------------------------------------------------------

    def publish(self, key: str, wheel: Path, metadata: Mapping[str, Any], *, progress: Any = None) -> Published:
        """Push one wheel under its content key. metadata: `inputs` (the key's inputs, required),
        `recipes` (or `recipe`), `source` ({url, commit, path}); a local cache entry is such a
        mapping. Refuses (ArtefactRefused) a wheel that fails the checks a pull would make."""
        tag = tag_for(key)
        inputs = metadata.get("inputs")
        if not isinstance(inputs, Mapping) or cache.wheel_key(dict(inputs)) != key:
            raise ArtefactRefused(
                f"refusing to push {wheel.name} as {tag}: its key inputs do not hash to that key",
                hint="push entries of the local cache (envbuilder cache push), whose keys are checked",
            )
        archs = _archs_of(inputs)
        sha = _sha256_file(wheel)
        if metadata.get("sha256") not in (None, sha):
            raise ArtefactRefused(
                f"refusing to push {wheel.name}: sha256 expected {metadata['sha256']}, got {sha} (changed on disk?)"
            )
        try:
            parse_wheel_filename(wheel.name)
        except InvalidWheelFilename:
            raise ArtefactRefused(f"refusing to push {wheel.name}: not a wheel file name") from None
        problem = sass_problem(wheel, archs)
        if problem:
            raise ArtefactRefused(f"refusing to push {wheel.name} ({tag}): {problem}")

        with tempfile.TemporaryDirectory(prefix="envbuilder-push-") as tmp:
            existing = self._existing(key, archs, tag, Path(tmp) / "existing")
            if existing is not None and existing[1] is None:
                return Published("already published", tag, existing[0], note="the artefact there is intact")
            replaces = existing[0] if existing else None
            avoid = existing[2] if existing else set()
            built = _build(key, wheel, sha, metadata, archs, Path(tmp), replaces=replaces, avoid=avoid)
            config = Path(tmp) / "config.json"
            config.write_bytes(built.config)
            sent = 0
            if self.store.push_blob(built.layer, built.layer_digest, progress=progress):
                sent += built.layer.stat().st_size
            if self.store.push_blob(config, "sha256:" + hashlib.sha256(built.config).hexdigest()):
                sent += len(built.config)
            # Someone may have published while we uploaded: keep an intact artefact of theirs.
            now = self._existing(key, archs, tag, Path(tmp) / "now")
            if now is not None and now[0] != replaces and now[1] is None:
                return Published("already published", tag, now[0], sent, "by a concurrent push")
            digest = self.store.put_manifest(tag, built.manifest, MANIFEST_TYPE, if_absent=replaces is None)
            after = self.store.get_manifest(tag)
            if after is not None and after[1] != digest:
                self.store.delete_manifest(digest)  # ours lost the tag: leave one artefact
                return Published("already published", tag, after[1], sent, "by a concurrent push")
        if replaces:
            log.warning("replaced %s in %s (was %s: %s)", tag, self.url, replaces, existing[1] if existing else "")
            return Published(
                "replaced", tag, digest, sent, f"the artefact there was bad: {existing[1] if existing else ''}"
            )
        return Published("pushed", tag, digest, sent)

    def _existing(
        self, key: str, archs: tuple[Arch, ...], tag: str, tmp: Path
    ) -> tuple[str, str | None, set[str]] | None:
        """None if the tag is free; else (manifest digest, why it is bad or None, its blob digests)."""
        try:
            found = self.store.get_manifest(tag)
        except DigestMismatch as exc:
            return "unreadable", exc.message, set()
        if found is None:
            return None
        blobs: set[str] = set()
        try:
            raw = json.loads(found[0])
            blobs = {d["digest"] for d in [raw.get("config", {}), *raw.get("layers", [])] if isinstance(d, dict)}
        except (ValueError, TypeError, AttributeError):
            pass
        tmp.mkdir(parents=True, exist_ok=True)
        try:
            self._pull(key, archs, found, tmp)
        except (ArtefactRefused, DigestMismatch) as exc:
            return found[1], exc.message, blobs
        except (RegistryUnavailable, RegistryAuthError):
            raise
        except EnvbuilderError as exc:
            return found[1], exc.message, blobs
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return found[1], None, blobs

    # --- listing -----------------------------------------------------------------------------

    def artefacts(self) -> Iterator[Listed]:
        """Every envbuilder artefact in the remote, from its manifest (one request per tag)."""
        for tag in self.store.tags():
            if not re.fullmatch(TAG_PREFIX + "[0-9a-f]{64}", tag):
                continue
            try:
                found = self.store.get_manifest(tag)
                if found is None:
                    continue
                manifest = _manifest(found[0])
            except (RegistryUnavailable, RegistryAuthError):
                raise
            except EnvbuilderError as exc:
                log.warning("skipping %s in %s: %s", tag, self.url, exc.message)
                continue
            a = manifest.get("annotations") or {}
            yield Listed(
                tag=tag,
                key=a.get(ANNOTATION + "key", tag[len(TAG_PREFIX) :]),
                extension=a.get(ANNOTATION + "extension", ""),
                recipes=[r for r in a.get(ANNOTATION + "recipes", "").split(",") if r],
                archs=a.get(ANNOTATION + "archs", ""),
                torch=a.get(ANNOTATION + "torch", ""),
                cuda=a.get(ANNOTATION + "cuda", ""),
                python=a.get(ANNOTATION + "python", ""),
                wheel=a.get("org.opencontainers.image.title", ""),
                size=int(manifest["layers"][0]["size"]),
                digest=found[1],
                annotations=dict(a),
            )


# --- the artefact format -------------------------------------------------------------------


def _build(
    key: str,
    wheel: Path,
    sha: str,
    metadata: Mapping[str, Any],
    archs: tuple[Arch, ...],
    tmp: Path,
    *,
    replaces: str | None,
    avoid: set[str],
) -> _Built:
    inputs = dict(metadata["inputs"])
    recipes = sorted({*metadata.get("recipes", ()), *([metadata["recipe"]] if metadata.get("recipe") else [])})
    source = metadata.get("source") or None
    sass, _ = cache.wheel_archs(wheel, archs)
    size = wheel.stat().st_size
    config_data: dict[str, Any] = {
        "schema": CONFIG_SCHEMA,
        "key": key,
        "inputs": inputs,
        "wheel": {"name": wheel.name, "sha256": sha, "size": size, "sass": sass},
        "recipes": recipes,
        "source": source,
    }
    if replaces:
        config_data["replaces"] = replaces  # a new config digest: the old blob may be the damaged one
    config = _canonical(config_data)
    layer, layer_type = wheel, WHEEL_TYPE
    if "sha256:" + sha in avoid:
        layer, layer_type = tmp / (wheel.name + ".gz"), WHEEL_GZIP_TYPE
        mtime = int(time.time())
        while True:
            with wheel.open("rb") as src, layer.open("wb") as raw, gzip.GzipFile(wheel.name, "wb", 1, raw, mtime) as gz:
                shutil.copyfileobj(src, gz)
            if "sha256:" + _sha256_file(layer) not in avoid:
                break
            mtime += 1
    layer_digest = "sha256:" + _sha256_file(layer)
    torch = inputs.get("torch") or ["", ""]
    annotations = {
        "org.opencontainers.image.title": wheel.name,
        ANNOTATION + "key": key,
        ANNOTATION + "extension": str(inputs.get("extension", "")),
        ANNOTATION + "recipes": ",".join(recipes),
        ANNOTATION + "torch": str(torch[0]),
        ANNOTATION + "cuda": str(torch[1]),
        ANNOTATION + "python": str(inputs.get("python", "")),
        ANNOTATION + "archs": str(inputs.get("archs", "")),
        ANNOTATION + "nvcc": str(inputs.get("nvcc", "")),
        ANNOTATION + "wheel.sha256": sha,
    }
    if isinstance(source, Mapping):
        if source.get("url"):
            annotations["org.opencontainers.image.source"] = str(source["url"])
        if source.get("commit"):
            annotations["org.opencontainers.image.revision"] = str(source["commit"])
    manifest = _canonical(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "artifactType": ARTIFACT_TYPE,
            "config": {
                "mediaType": CONFIG_TYPE,
                "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": layer_type,
                    "digest": layer_digest,
                    "size": layer.stat().st_size,
                    "annotations": {"org.opencontainers.image.title": wheel.name},
                }
            ],
            "annotations": annotations,
        }
    )
    return _Built(manifest, "sha256:" + hashlib.sha256(manifest).hexdigest(), config, layer, layer_digest, layer_type)


def _manifest(data: bytes) -> dict[str, Any]:
    """The manifest, if it has the shape of an envbuilder artefact."""
    try:
        m = json.loads(data)
        config, layers = m["config"], m["layers"]
        ok = (
            m.get("schemaVersion") == 2
            and m.get("mediaType", MANIFEST_TYPE) == MANIFEST_TYPE
            and m.get("artifactType") == ARTIFACT_TYPE
            and config.get("mediaType") == CONFIG_TYPE
            and isinstance(config.get("size"), int)
            and 0 < config["size"] <= MAX_CONFIG
            and isinstance(layers, list)
            and len(layers) == 1
            and layers[0].get("mediaType") in (WHEEL_TYPE, WHEEL_GZIP_TYPE)
            and isinstance(layers[0].get("size"), int)
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise ArtefactRefused("its manifest is not an envbuilder extension-wheel artefact")
    return m  # type: ignore[no-any-return]


def _config(key: str, data: bytes, manifest: Mapping[str, Any]) -> dict[str, Any]:
    try:
        config = json.loads(data)
        inputs, wheel = config["inputs"], config["wheel"]
        recomputed = cache.wheel_key(inputs)
        name, annotated = wheel["name"], (manifest.get("annotations") or {}).get(ANNOTATION + "key")
    except (ValueError, KeyError, TypeError):
        raise ArtefactRefused("its config is not envbuilder's extension-wheel metadata") from None
    if config.get("schema") != CONFIG_SCHEMA:
        raise ArtefactRefused(f"its config schema is {config.get('schema')!r}, expected {CONFIG_SCHEMA!r}")
    for what, value in (
        ("config", config.get("key")),
        ("annotated", annotated),
        ("recomputed from its inputs", recomputed),
    ):
        if value != key:
            raise ArtefactRefused(f"key mismatch: asked for {key}, the {what} key is {value}")
    try:
        if "/" in name or "\\" in name:
            raise InvalidWheelFilename(name)
        parse_wheel_filename(name)
    except InvalidWheelFilename:
        raise ArtefactRefused(f"its wheel name {name!r} is not a wheel file name") from None
    return config  # type: ignore[no-any-return]


def check_wheel(wheel: Path, expected: Mapping[str, Any], archs: tuple[Arch, ...]) -> None:
    sha = _sha256_file(wheel)
    if sha != expected.get("sha256"):
        raise ArtefactRefused(f"{wheel.name}: sha256 expected {expected.get('sha256')}, got {sha}")
    if wheel.stat().st_size != expected.get("size"):
        raise ArtefactRefused(f"{wheel.name}: {wheel.stat().st_size} bytes, expected {expected.get('size')}")
    problem = sass_problem(wheel, archs)
    if problem:
        raise ArtefactRefused(f"{wheel.name}: {problem}")


def _gunzip(blob: Path, wheel: Path, size: int) -> None:
    done = 0
    with gzip.open(blob, "rb") as src, wheel.open("wb") as out:
        try:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                done += len(chunk)
                if done > size:
                    raise ArtefactRefused(f"{wheel.name}: the gzip layer holds more than the {size} bytes stated")
                out.write(chunk)
        except (OSError, EOFError) as exc:
            raise ArtefactRefused(f"{wheel.name}: the gzip layer is damaged ({exc})") from None


# --- the local cache and a remote ----------------------------------------------------------


def restore(
    remote: Remote, store: cache.WheelCache, key: str, archs: tuple[Arch, ...], *, recipe: str | None = None
) -> tuple[Path | None, str]:
    """Fetch key from remote into the local cache: (the local cache's wheel, reason) or (None, reason).
    Call it holding store.claim(key), after store.lookup missed; recipe is recorded as a user."""
    with tempfile.TemporaryDirectory(prefix="envbuilder-fetch-") as tmp:
        got = remote.fetch(key, archs, Path(tmp))
        if got.wheel is None or got.config is None:
            return None, got.reason
        meta = {"recipes": got.config.get("recipes") or [], "source": got.config.get("source"), "origin": remote.url}
        status = store.store(key, got.wheel, got.config["inputs"], archs, metadata=meta)
        if status not in ("cached", "already cached"):
            return None, f"{got.reason}, but {status}"
    wheel, why = store.lookup(key, archs, recipe=recipe)
    return (wheel, got.reason) if wheel is not None else (None, why)
