"""A small client of the OCI distribution API (distribution-spec v1.1): what the binary cache needs.

Blobs: HEAD, GET (streamed to a file, digest and size checked before the file gets its name),
upload (POST then one PUT, or PATCH chunks then PUT). Manifests: GET and PUT by tag or digest,
DELETE by digest. Tags: list, following `Link` pagination. No referrers API: GHCR, Docker Hub
and distribution 2.8 answer 404 (research/caches.md §2.3).

Auth: the first 401 names the scheme in WWW-Authenticate. Bearer (GHCR, Docker Hub, Harbor, a
distribution behind a token server): ask the realm for a token for the challenge's scope, with
Basic credentials (or an OAuth2 refresh token) when there are any, then retry; a token that stops
working is fetched again once. Basic (distribution with htpasswd): send the credentials. The
header is then sent eagerly. Credentials that the registry refuses are a RegistryAuthError, an
InputError (exit 2).

Transport: HTTPS. Plain HTTP only for a loopback registry (127.0.0.0/8, ::1, localhost; tried
after HTTPS, as Docker does) or when the caller passes insecure=True. Credentials never go over
plain HTTP to a token realm that is not loopback unless insecure=True; requests drops the
Authorization header itself when a redirect leaves the host (signed storage URLs).

Why not oras-py (research/caches.md §2.5): it cannot set `artifactType`, does not check the
digests of what it pulls, and its default token backend fails on Basic-only registries.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

import requests

from envbuilder.credentials import Credentials
from envbuilder.errors import DigestMismatch, RegistryAuthError, RegistryError, RegistryUnavailable

__all__ = ["Client", "DigestMismatch", "RegistryAuthError", "RegistryError", "RegistryUnavailable"]

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
MAX_MANIFEST = 4 * 1024 * 1024  # registries must accept at least this (spec); we refuse larger
CHUNK = 1024 * 1024
# Reads are retried on these: distribution answers 500 to a GET of a tag that a concurrent PUT
# is rewriting (seen in the concurrent-push test), registries rate-limit with 429/503.
TRANSIENT = {429, 500, 502, 503, 504}
RETRY_DELAYS = (0.1, 0.3, 1.0, 2.0)

Progress = Callable[[int, int], None]  # (bytes done, bytes total)


def is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.endswith("]") or "]:" in host else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(digest: str) -> str:
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise RegistryError(f"not a sha256 digest: {digest!r}")
    return digest


def parse_challenges(header: str) -> list[tuple[str, dict[str, str]]]:
    """WWW-Authenticate (RFC 7235): [(scheme lower-cased, {param: value})]; quoted values may hold commas."""
    token = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"  # noqa: S105 - RFC 7230's token characters
    param = re.compile(rf'\s*({token})\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*)\s*,?')
    challenges: list[tuple[str, dict[str, str]]] = []
    pos = 0
    while pos < len(header):
        m = re.compile(rf"\s*,?\s*({token})(?:\s+|$)").match(header, pos)
        if not m:
            break
        params: dict[str, str] = {}
        pos = m.end()
        while (p := param.match(header, pos)) is not None and p.group(0).strip():
            value = p.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params[p.group(1).lower()] = value
            pos = p.end()
        challenges.append((m.group(1).lower(), params))
    return challenges


class Client:
    """One repository of one registry, e.g. Client("ghcr.io", "lab/envbuilder-cache")."""

    def __init__(
        self,
        host: str,
        repository: str,
        *,
        credentials: Credentials | None = None,
        insecure: bool = False,
        push: bool = False,
        timeout: float = 60.0,
    ) -> None:
        self.host = host
        self.repository = repository
        self.credentials = credentials
        self.insecure = insecure
        self.actions = "pull,push" if push else "pull"
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "envbuilder-oci/1"
        self._scheme: str | None = None
        self._authorization: str | None = None
        self._plain_allowed = insecure or is_loopback(host)

    # --- transport ---------------------------------------------------------------------------

    def _base(self) -> str:
        if self._scheme is None:
            self._scheme = self._probe_scheme()
        return f"{self._scheme}://{self.host}"

    def _probe_scheme(self) -> str:
        tls_error: Exception
        try:
            self.session.get(f"https://{self.host}/v2/", timeout=self.timeout, allow_redirects=False)
            return "https"
        except requests.exceptions.SSLError as exc:
            if not self._plain_allowed:
                raise RegistryUnavailable(
                    f"{self.host}: TLS failed ({_short(exc)})",
                    hint="if the registry uses its own CA, point REQUESTS_CA_BUNDLE at it; "
                    "for a plain-HTTP lab registry pass --insecure (or ENVBUILDER_CACHE_INSECURE=1)",
                ) from None
            tls_error = exc
        except requests.exceptions.ConnectionError as exc:
            if not self._plain_allowed:
                raise RegistryUnavailable(f"{self.host}: cannot connect ({_short(exc)})") from None
            tls_error = exc
        try:
            self.session.get(f"http://{self.host}/v2/", timeout=self.timeout, allow_redirects=False)
        except requests.exceptions.RequestException as exc:
            raise RegistryUnavailable(
                f"{self.host}: cannot connect over HTTPS ({_short(tls_error)}) or HTTP ({_short(exc)})"
            ) from None
        return "http"

    def _url(self, path: str) -> str:
        return urljoin(self._base() + "/", path)

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: Callable[[], Any] | None = None,
        stream: bool = False,
        params: dict[str, str] | None = None,
    ) -> requests.Response:
        """One API call, authenticating on a 401 and retrying; `body` makes a fresh request body."""
        url = path if "://" in path else self._url(path)
        refreshed = 0
        retries = list(RETRY_DELAYS) if method in ("GET", "HEAD") else []
        while True:
            sent = dict(headers or {})
            if self._authorization:
                sent["Authorization"] = self._authorization
            try:
                response = self.session.request(
                    method,
                    url,
                    headers=sent,
                    data=body() if body else None,
                    stream=stream,
                    params=params,
                    timeout=self.timeout,
                    allow_redirects=True,
                )
            except requests.exceptions.RequestException as exc:
                raise RegistryUnavailable(f"{self.host}: {method} {urlsplit(url).path} failed: {_short(exc)}") from None
            if response.status_code == 401 and refreshed < 2:
                response.close()
                self._authenticate(response)
                refreshed += 1
                continue
            if response.status_code in TRANSIENT and retries:
                response.close()
                delay = retries.pop(0)
                with contextlib.suppress(ValueError):
                    delay = max(delay, min(float(response.headers.get("Retry-After", 0)), 10.0))
                time.sleep(delay)
                continue
            if response.status_code in (401, 403):
                raise self._refused(response)
            return response

    def _authenticate(self, response: requests.Response) -> None:
        challenges = parse_challenges(response.headers.get("WWW-Authenticate", ""))
        schemes = dict(challenges)
        if "bearer" in schemes:
            header = "Bearer " + self._token(schemes["bearer"])
        elif "basic" in schemes:
            if self.credentials is None:
                raise self._needs_credentials()
            if not (self._plain_allowed or self._scheme == "https"):
                raise RegistryAuthError(f"{self.host}: refusing to send credentials over plain HTTP")
            header = self.credentials.basic()
        else:
            raise RegistryAuthError(
                f"{self.host}: unauthorised, and the registry names no scheme envbuilder knows "
                f"(WWW-Authenticate: {response.headers.get('WWW-Authenticate', '<none>')!r})"
            )
        if header == self._authorization and not header.startswith("Bearer "):
            raise self._refused(response)
        self._authorization = header

    def _token(self, challenge: dict[str, str]) -> str:
        realm = challenge.get("realm", "")
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise RegistryAuthError(f"{self.host}: the Bearer challenge's realm is not a URL: {realm!r}")
        if parts.scheme == "http" and not (self.insecure or is_loopback(parts.netloc)):
            raise RegistryAuthError(
                f"{self.host}: the token realm {realm} is plain HTTP; refusing to send credentials there",
                hint="pass --insecure only if you trust the network between you and it",
            )
        scope = f"repository:{self.repository}:{self.actions}"
        wanted = challenge.get("scope", "")
        if wanted and not wanted.startswith(f"repository:{self.repository}:"):
            scope = wanted  # e.g. registry:catalog:*, or another repository (cross-repo mount)
        params = {"scope": scope}
        if challenge.get("service"):
            params["service"] = challenge["service"]
        creds = self.credentials
        try:
            if creds is not None and creds.identity_token:
                answer = self.session.post(
                    realm,
                    data={
                        **params,
                        "grant_type": "refresh_token",
                        "refresh_token": creds.secret,
                        "client_id": "envbuilder",
                    },
                    timeout=self.timeout,
                )
            else:
                auth_header = {"Authorization": creds.basic()} if creds is not None else {}
                answer = self.session.get(
                    realm, params={**params, "client_id": "envbuilder"}, headers=auth_header, timeout=self.timeout
                )
        except requests.exceptions.RequestException as exc:
            raise RegistryUnavailable(f"{self.host}: token server {parts.netloc} unreachable: {_short(exc)}") from None
        if answer.status_code in (401, 403):
            raise (self._needs_credentials() if creds is None else self._refused(answer))
        if answer.status_code != 200:
            raise RegistryError(f"{self.host}: token server {realm} answered {answer.status_code}: {answer.text[:200]}")
        try:
            data = answer.json()
            return str(data.get("token") or data["access_token"])
        except (ValueError, KeyError, AttributeError):
            raise RegistryError(f"{self.host}: token server {realm} sent no token") from None

    def _needs_credentials(self) -> RegistryAuthError:
        return RegistryAuthError(
            f"{self.host}/{self.repository}: the registry needs credentials and none were found",
            hint="set ENVBUILDER_REGISTRY_USERNAME and ENVBUILDER_REGISTRY_PASSWORD (a token for GHCR), "
            "or run `docker login` for this registry",
        )

    def _refused(self, response: requests.Response) -> RegistryAuthError:
        if self.credentials is None:
            return self._needs_credentials()
        who = f"user {self.credentials.username!r}" if self.credentials.username else "the identity token"
        what = "refused" if response.status_code == 401 else f"denied {self.actions} to"
        return RegistryAuthError(
            f"{self.host}/{self.repository}: the registry {what} {who} (credentials from {self.credentials.source}; "
            f"HTTP {response.status_code}{_error_text(response)})",
            hint="check the username and password/token (GHCR needs a token with write:packages to push)",
        )

    # --- API calls ---------------------------------------------------------------------------

    def _api(self, kind: str, ref: str = "") -> str:
        return f"/v2/{self.repository}/{kind}/{ref}"

    def ping(self) -> None:
        """GET /v2/ and authenticate: raises RegistryAuthError or RegistryUnavailable early."""
        response = self.request("GET", "/v2/")
        if response.status_code != 200:
            raise RegistryError(f"{self.host}: /v2/ answered {response.status_code}: not an OCI registry?")

    def blob_exists(self, digest: str) -> bool:
        response = self.request("HEAD", self._api("blobs", check_digest(digest)))
        if response.status_code in (200, 307):
            return True
        if response.status_code == 404:
            return False
        raise self._unexpected("HEAD blob", response)

    def get_blob(self, digest: str, dest: Path, *, size: int | None = None, progress: Progress | None = None) -> Path:
        """Stream a blob into dest; dest appears only when the bytes hash to digest (and have size)."""
        check_digest(digest)
        response = self.request("GET", self._api("blobs", digest), stream=True)
        if response.status_code == 404:
            raise RegistryError(f"{self.host}/{self.repository}: blob {digest} is missing")
        if response.status_code != 200:
            raise self._unexpected("GET blob", response)
        with response:
            write_verified(response.iter_content(CHUNK), dest, digest, size, progress, f"{self.host} blob")
        return dest

    def push_blob(
        self, path: Path, digest: str, *, chunk_size: int | None = None, progress: Progress | None = None
    ) -> bool:
        """Upload a file as a blob unless the registry has it. Returns whether bytes were sent.
        Monolithic by default (POST, then one PUT); with chunk_size, PATCH chunks then PUT."""
        if self.blob_exists(digest):
            return False
        size = path.stat().st_size
        response = self.request("POST", self._api("blobs", "uploads/"))
        if response.status_code != 202 or "Location" not in response.headers:
            raise self._unexpected("POST blob upload", response)
        location = urljoin(response.url, response.headers["Location"])
        octets = {"Content-Type": "application/octet-stream"}
        if chunk_size:
            with path.open("rb") as fh:
                offset = 0
                while offset < size:
                    chunk = fh.read(chunk_size)
                    end = offset + len(chunk) - 1
                    response = self.request(
                        "PATCH",
                        location,
                        headers={**octets, "Content-Range": f"{offset}-{end}", "Content-Length": str(len(chunk))},
                        body=lambda c=chunk: c,  # type: ignore[misc]
                    )
                    if response.status_code != 202 or "Location" not in response.headers:
                        raise self._unexpected("PATCH blob chunk", response)
                    location = urljoin(response.url, response.headers["Location"])
                    offset = end + 1
                    if progress:
                        progress(offset, size)
            response = self.request("PUT", location, headers={"Content-Length": "0"}, params={"digest": digest})
        else:
            with path.open("rb") as fh:

                def body() -> IO[bytes]:
                    fh.seek(0)
                    return _Reading(fh, size, progress)  # type: ignore[return-value]

                response = self.request(
                    "PUT",
                    location,
                    headers={**octets, "Content-Length": str(size)},
                    body=body,
                    params={"digest": digest},
                )
        if response.status_code != 201:
            raise self._unexpected("PUT blob", response)
        return True

    def get_manifest(self, reference: str) -> tuple[bytes, str] | None:
        """(manifest bytes, digest) for a tag or digest, or None if there is none. The bytes must
        hash to the digest the registry states (and to the reference when it is a digest)."""
        response = self.request("GET", self._api("manifests", reference), headers={"Accept": MANIFEST_TYPE})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._unexpected("GET manifest", response)
        data = response.content
        if len(data) > MAX_MANIFEST:
            raise RegistryError(f"{self.host}: manifest {reference} is {len(data)} bytes, over the 4 MiB limit")
        digest = sha256_digest(data)
        stated = response.headers.get("Docker-Content-Digest")
        if (stated and stated.startswith("sha256:") and stated != digest) or (
            reference.startswith("sha256:") and reference != digest
        ):
            raise DigestMismatch(
                f"{self.host}: manifest {reference}: expected {stated or reference}, got {digest}",
                hint="the registry's storage is damaged or something rewrote the response",
            )
        return data, digest

    def put_manifest(
        self, reference: str, data: bytes, media_type: str = MANIFEST_TYPE, *, if_absent: bool = False
    ) -> str:
        """PUT a manifest. distribution-spec 1.1 has no conditional PUT, so if_absent cannot be
        honoured here: the caller checks the tag just before (remote.publish does).
        The same bytes may be PUT again, so a refusal that a concurrent push of the same blobs can
        cause (distribution rewrites a blob's link file in place: 400 DIGEST_INVALID or
        MANIFEST_BLOB_UNKNOWN while another upload of that blob commits; 5xx) is retried."""
        for delay in (*RETRY_DELAYS, None):
            response = self.request(
                "PUT", self._api("manifests", reference), headers={"Content-Type": media_type}, body=lambda: data
            )
            transient = response.status_code in TRANSIENT or (
                response.status_code == 400 and _error_code(response) in ("DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN")
            )
            if not transient or delay is None:
                break
            time.sleep(delay)
        if response.status_code not in (200, 201):
            raise self._unexpected("PUT manifest", response)
        digest = sha256_digest(data)
        stated = response.headers.get("Docker-Content-Digest")
        if stated and stated != digest:
            raise DigestMismatch(f"{self.host}: stored manifest {reference} as {stated}, but its bytes are {digest}")
        return digest

    def delete_manifest(self, digest: str) -> bool:
        """DELETE by digest (distribution refuses by tag). False where the registry does not allow it."""
        response = self.request("DELETE", self._api("manifests", check_digest(digest)))
        if response.status_code in (200, 202, 404):
            return response.status_code != 404
        if response.status_code in (400, 405):  # deletes disabled (distribution) or not offered
            return False
        raise self._unexpected("DELETE manifest", response)

    def tags(self) -> Iterator[str]:
        path: str | None = self._api("tags", "list")
        while path:
            response = self.request("GET", path)
            if response.status_code == 404:
                return  # the repository has no manifest yet
            if response.status_code != 200:
                raise self._unexpected("GET tags", response)
            try:
                yield from response.json().get("tags") or []
            except ValueError:
                raise RegistryError(f"{self.host}: tags/list is not JSON") from None
            following = response.links.get("next", {}).get("url")
            path = urljoin(response.url, following) if following else None

    def _unexpected(self, what: str, response: requests.Response) -> RegistryError:
        return RegistryError(
            f"{self.host}/{self.repository}: {what} answered HTTP {response.status_code}{_error_text(response)}"
        )


class _Reading:
    """A file wrapper that reports upload progress as requests reads it."""

    def __init__(self, fh: IO[bytes], size: int, progress: Progress | None) -> None:
        self.fh, self.size, self.progress, self.done = fh, size, progress, 0

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.done += len(data)
        if self.progress:
            self.progress(self.done, self.size)
        return data

    def __len__(self) -> int:
        return self.size


def write_verified(
    chunks: Iterator[bytes],
    dest: Path,
    digest: str,
    size: int | None,
    progress: Progress | None,
    what: str,
    mode: int | None = None,
) -> None:
    """Write chunks to a temporary file beside dest, then rename it to dest if the hash matches."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    done = 0
    fd, tmp = tempfile.mkstemp(prefix=".partial-", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                done += len(chunk)
                if size is not None and done > size:
                    raise DigestMismatch(f"{what} {digest}: more than the {size} bytes its descriptor states")
                h.update(chunk)
                out.write(chunk)
                if progress:
                    progress(done, size or done)
        got = "sha256:" + h.hexdigest()
        if got != digest:
            raise DigestMismatch(f"{what}: expected {digest}, got {got} ({done} bytes)")
        if size is not None and done != size:
            raise DigestMismatch(f"{what} {digest}: {done} bytes, its descriptor states {size}")
        if mode is not None:
            Path(tmp).chmod(mode)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _short(exc: BaseException) -> str:
    text = str(exc)
    for marker in ("Caused by ", "Failed to establish a new connection: "):
        if marker in text:
            text = text.split(marker, 1)[1]
    return text.strip("()'\" ")[:200]


def _error_code(response: requests.Response) -> str:
    try:
        return str(json.loads(response.content[:65536])["errors"][0]["code"])
    except (ValueError, KeyError, IndexError, TypeError):
        return ""


def _error_text(response: requests.Response) -> str:
    """': CODE message' from an OCI error body, if there is one."""
    try:
        errors = json.loads(response.content[:65536]).get("errors") or []
        first = errors[0]
        return f": {first.get('code', '')} {first.get('message', '')}".rstrip()
    except (ValueError, AttributeError, IndexError, TypeError, KeyError):
        return ""
