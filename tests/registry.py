"""A real OCI registry on 127.0.0.1 for tests and benchmarks: Debian's docker-registry
(distribution 2.8) with htpasswd (bcrypt) auth and its storage in a temp folder; and a small
token server in front of it, so that the Bearer token flow that GHCR and Docker Hub use runs for
real (distribution 2.8 itself does Basic auth only). Both listen on loopback only and are stopped
by their own pid / server object."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

INSTALL_HINT = "apt-get install -y docker-registry apache2-utils (Debian's distribution 2.8 and htpasswd)"


def registry_binary() -> str | None:
    """docker-registry on PATH, or $ENVBUILDER_TEST_REGISTRY (e.g. unpacked from the .deb with
    `apt-get download docker-registry && dpkg -x docker-registry_*.deb root/` on a machine
    without apt access)."""
    given = os.environ.get("ENVBUILDER_TEST_REGISTRY")
    if given:
        return given if Path(given).is_file() else None
    return shutil.which("docker-registry") or (
        "/usr/bin/docker-registry" if Path("/usr/bin/docker-registry").exists() else None
    )


def _bcrypt_fallback(password: str) -> str | None:
    """A bcrypt hash without htpasswd: the bcrypt package, or crypt (Python < 3.13)."""
    try:
        import bcrypt  # type: ignore[import-not-found]

        return str(bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode())
    except ImportError:
        pass
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # type: ignore[import-not-found,unused-ignore]

        return str(crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))
    except ImportError:
        return None


def missing_reason() -> str | None:
    if registry_binary() is None:
        return f"docker-registry is not installed ({INSTALL_HINT})"
    if shutil.which("htpasswd") is None and _bcrypt_fallback("x") is None:
        return f"htpasswd is not installed ({INSTALL_HINT})"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def htpasswd_line(user: str, password: str) -> str:
    # bcrypt cost 4: distribution checks the hash on every request, cost 12 costs 0.3 s each
    if shutil.which("htpasswd") is None:
        return f"{user}:{_bcrypt_fallback(password)}"
    done = subprocess.run(["htpasswd", "-Bbn", "-C", "4", user, password], capture_output=True, text=True, check=True)
    return done.stdout.strip()


class RegistryServer:
    def __init__(self, base: Path, users: dict[str, str] | None = None) -> None:
        self.base = base
        self.users = users or {"alice": "wonderland"}
        self.data = base / "data"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def remote(self, repository: str = "lab/envbuilder-cache") -> str:
        return f"oci://{self.host}/{repository}"

    def start(self) -> RegistryServer:
        binary = registry_binary()
        assert binary, missing_reason()
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "htpasswd").write_text("".join(htpasswd_line(u, p) + "\n" for u, p in self.users.items()))
        for _ in range(5):
            self.port = free_port()
            config = self.base / "config.yml"
            config.write_text(
                "version: 0.1\n"
                "log: {level: warn, accesslog: {disabled: true}}\n"
                f"storage: {{filesystem: {{rootdirectory: {self.data}}}, delete: {{enabled: true}}}}\n"
                f"http: {{addr: '127.0.0.1:{self.port}', secret: test-only-secret}}\n"
                f"auth: {{htpasswd: {{realm: basic-realm, path: {self.base / 'htpasswd'}}}}}\n"
            )
            log = (self.base / "registry.log").open("ab")
            self.process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
            log.close()
            if self._wait_ready():
                return self
            self.stop()
        raise RuntimeError(f"docker-registry did not start: {(self.base / 'registry.log').read_text()[-2000:]}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"GET /v2/ HTTP/1.0\r\nHost: x\r\n\r\n")
                    if b" 401 " in s.recv(200):
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def kill(self) -> None:
        """SIGKILL: the registry stops at once, in the middle of whatever it is doing."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        self.stop()
        port = self.port
        binary = registry_binary()
        assert binary
        log = (self.base / "registry.log").open("ab")
        self.process = subprocess.Popen([binary, "serve", str(self.base / "config.yml")], stdout=log, stderr=log)
        log.close()
        assert self._wait_ready(), f"registry did not come back on port {port}"

    # --- its storage, for tests that damage it ---------------------------------------------

    def blob_data(self, digest: str) -> Path:
        hexa = digest.split(":", 1)[1]
        return self.data / "docker/registry/v2/blobs/sha256" / hexa[:2] / hexa / "data"

    def revisions(self, repository: str) -> list[str]:
        """Manifests the repository holds (tagged or not), from the storage itself."""
        root = self.data / "docker/registry/v2/repositories" / repository / "_manifests/revisions/sha256"
        return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


class TokenServer:
    """Docker's token auth in front of a RegistryServer: 401 + WWW-Authenticate: Bearer for
    requests without a valid token; GET /token with Basic credentials issues one for the asked
    scope; requests with a valid token are proxied to the registry (with its Basic credentials)."""

    def __init__(self, registry: RegistryServer, users: dict[str, str], refresh_tokens: tuple[str, ...] = ()) -> None:
        self.registry = registry
        self.users = users
        self.refresh_tokens = set(refresh_tokens)  # OAuth2 refresh tokens (docker's identitytoken)
        self.tokens: dict[str, set[str]] = {}  # token -> granted "repo:action"
        self.issued: list[dict[str, str]] = []  # what /token was asked for
        self.bearer_requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.startswith("/token"):
                    server._token(self)
                else:
                    server._proxy(self)

            do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def remote(self, repository: str = "lab/envbuilder-cache") -> str:
        return f"oci://{self.host}/{repository}"

    def __enter__(self) -> TokenServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def revoke_all(self) -> None:
        """Tokens expire: the client must ask for a new one."""
        self.tokens.clear()

    def _send(self, h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def _token(self, h: BaseHTTPRequestHandler) -> None:
        from urllib.parse import parse_qs, urlsplit

        query = parse_qs(urlsplit(h.path).query)
        if h.command == "POST":  # OAuth2: grant_type=refresh_token in a form (distribution's oauth.md)
            query = parse_qs(h.rfile.read(int(h.headers.get("Content-Length") or 0)).decode())
        auth = h.headers.get("Authorization", "")
        user, _, password = (
            base64.b64decode(auth[6:]).decode().partition(":") if auth.startswith("Basic ") else ("", "", "")
        )
        refreshed = (
            query.get("grant_type") == ["refresh_token"] and query.get("refresh_token", [""])[0] in self.refresh_tokens
        )
        if not refreshed and (not user or self.users.get(user) != password):
            self._send(h, 401, b'{"details":"incorrect username or password"}', {"Content-Type": "application/json"})
            return
        granted = set()
        for scope in query.get("scope", []):
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind == "repository":
                granted |= {f"{name}:{a}" for a in actions.split(",")}
        self.issued.append({"service": query.get("service", [""])[0], "scope": " ".join(query.get("scope", []))})
        token = secrets.token_hex(16)
        self.tokens[token] = granted
        self._send(
            h, 200, json.dumps({"token": token, "expires_in": 60}).encode(), {"Content-Type": "application/json"}
        )

    def _proxy(self, h: BaseHTTPRequestHandler) -> None:
        m = re.match(r"/v2/(.+?)/(blobs|manifests|tags)/", h.path)
        action = "pull" if h.command in ("GET", "HEAD") else "push"
        auth = h.headers.get("Authorization", "")
        grants = self.tokens.get(auth[7:], set()) if auth.startswith("Bearer ") else None
        allowed = grants is not None and (m is None or f"{m.group(1)}:{action}" in grants)
        if not allowed:
            challenge = f'Bearer realm="http://{self.host}/token",service="envbuilder-test"'
            if m:
                challenge += f',scope="repository:{m.group(1)}:{action}"'
            body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
            self._send(h, 401, body, {"WWW-Authenticate": challenge, "Content-Type": "application/json"})
            return
        self.bearer_requests += 1
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else None
        user, password = next(iter(self.registry.users.items()))
        headers = {k: v for k, v in h.headers.items() if k.lower() not in ("authorization", "connection", "host")}
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Host"] = self.host  # the registry writes Location URLs with the host it was asked on
        upstream = http.client.HTTPConnection("127.0.0.1", self.registry.port, timeout=60)
        try:
            upstream.request(h.command, h.path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            relayed = {
                k: v
                for k, v in answer.getheaders()
                if k.lower() not in ("content-length", "connection", "transfer-encoding")
            }
            h.send_response(answer.status)
            for k, v in relayed.items():
                h.send_header(k, v)
            h.send_header(
                "Content-Length", (answer.getheader("Content-Length") or "0") if h.command == "HEAD" else str(len(data))
            )
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(data)
        finally:
            upstream.close()


def env_without_credentials() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ENVBUILDER_REGISTRY_")}
