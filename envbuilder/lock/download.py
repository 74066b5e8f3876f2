"""The download cache (<cache>/downloads): every artifact a lock names is fetched once, hashed
from its bytes while it streams, and kept by content (blobs/<sha256>/<file name>) with an entry
per URL (urls/<sha256 of the URL>.json). Files appear whole or not at all (temporary name, then
rename).

At lock time a URL already fetched is not fetched again: its recorded hash is the hash of the
bytes envbuilder downloaded. At install time (`verified`) the bytes are hashed again and must
match the lock; what the cache holds by content is exactly what a lock asked for, so a warm cache
installs a lock even after its index changed a file, and an empty one refuses the changed file."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from envbuilder.lock.errors import ArtifactMismatch, DownloadFailed
from envbuilder.paths import cache_dir

CHUNK = 1 << 20
RETRIES = 3


@dataclass(frozen=True)
class Fetched:
    path: Path
    sha256: str
    size: int
    url: str


def file_sha256(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


class DownloadCache:
    def __init__(self, root: Path | None = None, *, on_note: Callable[[str], None] | None = None) -> None:
        self.root = root or cache_dir() / "downloads"
        self.on_note = on_note
        self.fetched_urls: list[str] = []  # what this instance actually downloaded (tests, reports)

    def _entry(self, url: str) -> Path:
        return self.root / "urls" / f"{hashlib.sha256(url.encode()).hexdigest()}.json"

    def blob(self, sha256: str, filename: str) -> Path:
        return self.root / "blobs" / sha256[:2] / sha256 / filename

    def fetch(self, url: str) -> Fetched:
        """The file at url, from the cache when this URL was fetched before (and its blob is intact
        by size), else downloaded now."""
        entry = self._entry(url)
        try:
            record = json.loads(entry.read_text())
            blob = self.blob(record["sha256"], record["filename"])
            if blob.is_file() and blob.stat().st_size == record["size"]:
                return Fetched(blob, record["sha256"], record["size"], url)
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return self._download(url)

    def verified(
        self, url: str | None, local: Path | None, sha256: str, size: int, *, package: str, filename: str
    ) -> Path:
        """A local file whose bytes are the locked ones (hashed now), or ArtifactMismatch naming
        the package, the expected and the actual value. `local` (a lock's `path`) wins over url."""
        if local is not None:
            if not local.is_file():
                if url is None:
                    raise DownloadFailed(
                        f"{package}: {local} is missing", hint="the lock's files travel with it (bundle)"
                    )
            else:
                self._check(local, sha256, size, package=package, filename=filename, source=str(local))
                return local
        blob = self.blob(sha256, filename)
        if blob.is_file():
            actual, actual_size = file_sha256(blob)
            if actual == sha256 and actual_size == size:
                return blob
            shutil.rmtree(blob.parent, ignore_errors=True)  # a damaged cache entry: fetch again
        if url is None:
            raise DownloadFailed(f"{package}: {filename} has neither a file nor a URL")
        self._entry(url).unlink(missing_ok=True)  # ask the index again, not an old record
        got = self._download(url)
        self._check(got.path, sha256, size, package=package, filename=filename, source=url, known=got)
        return got.path

    @staticmethod
    def _check(
        path: Path, sha256: str, size: int, *, package: str, filename: str, source: str, known: Fetched | None = None
    ) -> None:
        actual, actual_size = (known.sha256, known.size) if known else file_sha256(path)
        # the sha256 is the file's identity: named first; a size alone differs only in a bad lock
        if actual != sha256:
            raise ArtifactMismatch(package, filename, "sha256", sha256, actual, source=source)
        if actual_size != size:
            raise ArtifactMismatch(package, filename, "size", str(size), str(actual_size), source=source)

    def _download(self, url: str) -> Fetched:
        filename = unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or "download"
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".part-", dir=tmp_dir)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                sha256, size = self._stream(url, out)
            blob = self.blob(sha256, filename)
            blob.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, blob)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        entry = self._entry(url)
        entry.parent.mkdir(parents=True, exist_ok=True)
        record = {"url": url, "sha256": sha256, "size": size, "filename": filename, "fetched": int(time.time())}
        fd, tmp_entry = tempfile.mkstemp(prefix=".entry-", dir=entry.parent)
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle)
        os.replace(tmp_entry, entry)
        self.fetched_urls.append(url)
        return Fetched(blob, sha256, size, url)

    def _stream(self, url: str, out: BinaryIO) -> tuple[str, int]:
        """Copy url's bytes into out, hashing them; retried on connection errors."""
        scheme = urlsplit(url).scheme
        if scheme in ("", "file"):
            path = Path(unquote(urlsplit(url).path)) if scheme == "file" else Path(url)
            try:
                with path.open("rb") as src:
                    return _copy(src, out)
            except OSError as exc:
                raise DownloadFailed(f"cannot read {url}: {exc.strerror}") from None
        if scheme not in ("http", "https"):
            raise DownloadFailed(f"cannot download {url}: only http(s) and file URLs are supported")
        import requests  # imported here: the CLI must not pay for it when printing a plan

        last: Exception | None = None
        for attempt in range(RETRIES):
            try:
                out.seek(0)
                out.truncate()
                with requests.get(url, stream=True, timeout=(30, 300)) as response:
                    if response.status_code != 200:
                        raise DownloadFailed(f"cannot download {url}: HTTP {response.status_code} {response.reason}")
                    if self.on_note:
                        length = response.headers.get("Content-Length")
                        self.on_note(f"downloading {url}" + (f" ({int(length) / 1e6:.1f} MB)" if length else ""))
                    return _copy_iter(response.iter_content(CHUNK), out)
            except requests.RequestException as exc:
                last = exc
                time.sleep(min(2**attempt, 5))
        raise DownloadFailed(f"cannot download {url}: {last}", hint="check the network, or the index's URL")


def _copy(src: BinaryIO, out: BinaryIO) -> tuple[str, int]:
    return _copy_iter(iter(lambda: src.read(CHUNK), b""), out)


def _copy_iter(chunks: Iterable[bytes], out: BinaryIO) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    for chunk in chunks:
        h.update(chunk)
        out.write(chunk)
        size += len(chunk)
    return h.hexdigest(), size
