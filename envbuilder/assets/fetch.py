"""Downloads of free assets: resumable, checksummed, retried, never a partial file under the final
name, and never an HTML page (a login or error page served with status 200) taken for a model."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import requests

from envbuilder.assets.formats import looks_like_html
from envbuilder.errors import DownloadError

Progress = Callable[[int, int | None], None]  # bytes so far, total (None if unknown)
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


class _Retry(Exception):
    pass


def download(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    sha1: str | None = None,
    size: int | None = None,
    progress: Progress | None = None,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    session: requests.Session | None = None,
) -> Path:
    """Download url to dest. Bytes accumulate in dest.part, which a later call resumes (HTTP
    Range); dest appears, atomically, only once the size and checksums match."""
    session = session or requests.Session()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            _one_attempt(session, url, part, timeout, progress)
            break
        except _Retry as exc:
            last_error = str(exc)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
    else:
        raise DownloadError(
            f"could not download {url} after {retries + 1} attempts: {last_error}",
            hint=f"run the same command again: it resumes from {part.name}",
        )
    _verify(part, url, sha256=sha256, sha1=sha1, size=size)
    os.replace(part, dest)
    return dest


def _one_attempt(session: requests.Session, url: str, part: Path, timeout: float, progress: Progress | None) -> None:
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    with session.get(url, headers=headers, stream=True, timeout=timeout) as response:
        if response.status_code == 416 and have:  # nothing left to send: the .part is complete
            return
        if response.status_code in RETRYABLE_STATUS:
            raise _Retry(f"HTTP {response.status_code} from {url}")
        if response.status_code >= 400:
            raise DownloadError(
                f"HTTP {response.status_code} from {url}", hint="check the URL in the recipe; the file may have moved"
            )
        if "text/html" in response.headers.get("Content-Type", "").lower():
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"{url} answered an HTML page (status {response.status_code}), not the file",
                hint="the site wants a login or shows an error page; download it in a browser and use `envbuilder assets install`",
            )
        resumed = have and response.status_code == 206
        if not resumed:
            have = 0  # the server ignored Range: start again
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        done = have
        with part.open("ab" if resumed else "wb") as out:
            for chunk in response.iter_content(chunk_size=1 << 16):
                out.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
        if total is not None and done < total:
            raise _Retry(f"connection closed after {done} of {total} bytes")


def _verify(part: Path, url: str, *, sha256: str | None, sha1: str | None, size: int | None) -> None:
    with part.open("rb") as f:
        head = f.read(4096)
    if looks_like_html(head):
        part.unlink()
        raise DownloadError(
            f"{url} sent an HTML page, not the file",
            hint="download it in a browser and use `envbuilder assets install`",
        )
    actual = part.stat().st_size
    if size is not None and actual != size:
        part.unlink()
        raise DownloadError(f"{url}: got {actual} bytes, expected {size}", hint="run the command again")
    for name, expected in (("sha256", sha256), ("sha1", sha1)):
        if expected:
            h = hashlib.new(name)
            with part.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            if h.hexdigest() != expected:
                part.unlink()
                raise DownloadError(
                    f"{url}: {name} is {h.hexdigest()}, expected {expected}",
                    hint="the file changed upstream or the transfer was corrupted",
                )
