"""A binary cache in a shared folder (file:///path, e.g. NFS on a cluster), holding the same
artefacts as a registry and answering the same calls as oci.Client.

Layout: an OCI image layout's `oci-layout` and `blobs/sha256/<hex>` (manifests are blobs too),
and `refs/<tag>` holding the digest of the tag's manifest. One file per tag instead of the
layout's index.json: several machines publishing at once would each rewrite index.json and
lose the others' entries, and flock over NFS is not to be relied on. Every file is written to a
temporary name in its final folder and renamed, which is atomic on a local filesystem and on
NFS, so a reader sees a whole blob or none, and a tag that names a manifest whose blobs are
already in place. Blobs are checked against their name on every read.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from envbuilder.errors import DigestMismatch, EnvbuilderError, RegistryError
from envbuilder.oci import CHUNK, Progress, check_digest, sha256_digest, write_verified

LAYOUT = {"imageLayoutVersion": "1.0.0"}
# mkstemp makes files 0600; the other users of a shared folder must read them (the umask decides)
_umask = os.umask(0o022)
os.umask(_umask)
SHARED_MODE = 0o666 & ~_umask


class FolderStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.host = str(root)  # for messages, like oci.Client.host

    def _blob(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / check_digest(digest).split(":", 1)[1]

    def _ref(self, tag: str) -> Path:
        if "/" in tag or tag.startswith("."):
            raise RegistryError(f"not a tag: {tag!r}")
        return self.root / "refs" / tag

    def _writable(self) -> None:
        try:
            for sub in ("blobs/sha256", "refs"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
            layout = self.root / "oci-layout"
            if not layout.exists():
                _atomic_write(layout, json.dumps(LAYOUT).encode())
        except OSError as exc:
            raise EnvbuilderError(
                f"{self.root}: cannot write the shared cache folder ({exc.strerror})",
                hint="check that the folder exists on every machine and that you may write to it",
            ) from None

    def ping(self) -> None:
        if not self.root.is_dir():
            raise RegistryError(f"{self.root}: no such folder", hint="create it, or mount the shared filesystem")

    def blob_exists(self, digest: str) -> bool:
        return self._blob(digest).is_file()

    def get_blob(self, digest: str, dest: Path, *, size: int | None = None, progress: Progress | None = None) -> Path:
        try:
            with self._blob(digest).open("rb") as fh:
                write_verified(iter(lambda: fh.read(CHUNK), b""), dest, digest, size, progress, f"{self.root} blob")
        except FileNotFoundError:
            raise RegistryError(f"{self.root}: blob {digest} is missing") from None
        return dest

    def push_blob(
        self, path: Path, digest: str, *, chunk_size: int | None = None, progress: Progress | None = None
    ) -> bool:
        self._writable()
        final = self._blob(digest)
        if final.is_file():
            return False
        with path.open("rb") as fh:  # hashed on the way in: a file changed since it was hashed is refused
            write_verified(
                iter(lambda: fh.read(CHUNK), b""), final, digest, path.stat().st_size, progress, str(path), SHARED_MODE
            )
        return True

    def get_manifest(self, reference: str) -> tuple[bytes, str] | None:
        if reference.startswith("sha256:"):
            digest = reference
        else:
            try:
                digest = self._ref(reference).read_text().strip()
            except FileNotFoundError:
                return None
        try:
            data = self._blob(digest).read_bytes()
        except FileNotFoundError:
            if reference.startswith("sha256:"):
                return None
            raise DigestMismatch(f"{self.root}: tag {reference} names manifest {digest}, which is missing") from None
        if sha256_digest(data) != digest:
            raise DigestMismatch(f"{self.root}: manifest {reference}: expected {digest}, got {sha256_digest(data)}")
        return data, digest

    def put_manifest(self, reference: str, data: bytes, media_type: str = "", *, if_absent: bool = False) -> str:
        """Store the manifest and point the tag at it. if_absent: only if the tag is free (link(2)
        fails on an existing name, atomically, on NFS too), so of two publishers the first wins."""
        self._writable()
        digest = sha256_digest(data)
        blob = self._blob(digest)
        if not blob.is_file():
            _atomic_write(blob, data)
        ref = self._ref(reference)
        if not if_absent:
            _atomic_write(ref, (digest + "\n").encode())
            return digest
        fd, tmp = tempfile.mkstemp(prefix=".partial-", dir=ref.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write((digest + "\n").encode())
                out.flush()
                os.fsync(out.fileno())
            Path(tmp).chmod(SHARED_MODE)
            os.link(tmp, ref)
        except FileExistsError:
            pass  # another publisher's manifest has the tag
        finally:
            Path(tmp).unlink(missing_ok=True)
        return digest

    def delete_manifest(self, digest: str) -> bool:
        """Remove a manifest no tag names (a publisher that lost a race drops its own)."""
        if any(self._ref(t).read_text().strip() == digest for t in self.tags() if self._ref(t).is_file()):
            return False
        try:
            self._blob(digest).unlink()
        except FileNotFoundError:
            return False
        return True

    def tags(self) -> Iterator[str]:
        refs = self.root / "refs"
        if refs.is_dir():
            yield from sorted(p.name for p in refs.iterdir() if not p.name.startswith("."))


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".partial-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        Path(tmp).chmod(SHARED_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
