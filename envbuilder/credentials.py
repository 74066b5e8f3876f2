"""Registry credentials, looked up the way Docker does, never taken from the command line.

In this order, for the registry host of a REMOTE:
1. ENVBUILDER_REGISTRY_USERNAME and ENVBUILDER_REGISTRY_PASSWORD (the password may be a token:
   a GitHub PAT or GITHUB_TOKEN for GHCR, an access token for Docker Hub or Harbor);
2. Docker's config file ($DOCKER_CONFIG/config.json, default ~/.docker/config.json):
   `credHelpers[host]`, then `credsStore` (both run `docker-credential-<name> get`), then
   `auths[host].auth` (base64 "user:password", what `docker login` writes without a store) or
   `auths[host].identitytoken` (an OAuth2 refresh token);
3. none: anonymous (enough to pull from a public repository).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from envbuilder.errors import InputError

USERNAME_VAR = "ENVBUILDER_REGISTRY_USERNAME"
PASSWORD_VAR = "ENVBUILDER_REGISTRY_PASSWORD"  # noqa: S105 - the name of a variable, not a secret

# Docker Hub's credentials are stored under its v1 index URL, whatever name the user typed.
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
DOCKER_HUB_HOSTS = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}


@dataclass(frozen=True)
class Credentials:
    username: str | None
    secret: str = field(repr=False)
    source: str  # where they came from, for error messages (never the secret)
    identity_token: bool = False  # secret is an OAuth2 refresh token, not a password

    def basic(self) -> str:
        raw = f"{self.username or ''}:{self.secret}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def docker_config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    return (Path(base).expanduser() if base else Path.home() / ".docker") / "config.json"


def for_registry(host: str) -> Credentials | None:
    """The credentials for registry `host` (host[:port]), or None to go anonymous."""
    user, password = os.environ.get(USERNAME_VAR), os.environ.get(PASSWORD_VAR)
    if user or password:
        if not (user and password):
            missing = PASSWORD_VAR if user else USERNAME_VAR
            raise InputError(
                f"{missing} is not set, but {USERNAME_VAR if user else PASSWORD_VAR} is",
                hint=f"set both {USERNAME_VAR} and {PASSWORD_VAR}, or neither to use ~/.docker/config.json",
            )
        return Credentials(user, password, f"{USERNAME_VAR}/{PASSWORD_VAR}")
    path = docker_config_path()
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InputError(
            f"{path}: not readable JSON ({exc})",
            hint="fix or move the file, or set the ENVBUILDER_REGISTRY_* variables",
        ) from None
    if not isinstance(config, dict):
        raise InputError(f"{path}: expected a JSON object")
    helpers = config.get("credHelpers") or {}
    for key in _keys(host):
        if key in helpers:
            return _from_helper(str(helpers[key]), key, host)
    if config.get("credsStore"):
        found = _from_helper(str(config["credsStore"]), _keys(host)[0], host, missing_ok=True)
        if found is not None:
            return found
    auths = config.get("auths") or {}
    for stored, entry in auths.items():
        if _normalise(stored) in _keys(host) and isinstance(entry, dict):
            return _from_auths_entry(entry, path, stored)
    return None


def _normalise(server: str) -> str:
    """'https://ghcr.io/v2/' -> 'ghcr.io' (the forms `docker login` has written over the years)."""
    if server.rstrip("/") == DOCKER_HUB_KEY.rstrip("/"):
        return DOCKER_HUB_KEY
    return server.split("://", 1)[-1].split("/", 1)[0].lower()


def _keys(host: str) -> list[str]:
    host = host.lower()
    return [DOCKER_HUB_KEY, "docker.io"] if host in DOCKER_HUB_HOSTS else [host]


def _from_auths_entry(entry: dict[str, object], path: Path, stored: str) -> Credentials | None:
    where = f"{path} auths[{stored!r}]"
    if entry.get("identitytoken"):
        return Credentials(None, str(entry["identitytoken"]), where, identity_token=True)
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(str(entry["auth"]), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise InputError(f"{where}: 'auth' is not base64 of user:password", hint="run docker login again") from None
        return Credentials(user, password, where)
    if entry.get("username") and entry.get("password"):
        return Credentials(str(entry["username"]), str(entry["password"]), where)
    return None  # an empty entry: docker keeps those when a credsStore holds the secret


def _from_helper(name: str, server: str, host: str, missing_ok: bool = False) -> Credentials | None:
    """docker-credential-<name> get: the server URL on stdin, {"Username", "Secret"} on stdout."""
    program = f"docker-credential-{name}"
    exe = shutil.which(program)
    if exe is None:
        if missing_ok:
            return None
        raise InputError(
            f"{docker_config_path()} names the credential helper {program!r} for {host}, but it is not on PATH",
            hint=f"install {program}, or set {USERNAME_VAR} and {PASSWORD_VAR}",
        )
    try:
        done = subprocess.run([exe, "get"], input=server, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(f"{program} get failed for {host}: {exc}") from None
    if done.returncode != 0:
        if "not found" in (done.stdout + done.stderr).lower():
            return None  # the helper knows nothing about this registry: anonymous
        raise InputError(
            f"{program} get failed for {host} (exit {done.returncode}): {(done.stderr or done.stdout).strip()[:300]}",
            hint="run docker login for this registry, or set the ENVBUILDER_REGISTRY_* variables",
        )
    try:
        answer = json.loads(done.stdout)
        user, secret = str(answer.get("Username") or ""), str(answer["Secret"])
    except (ValueError, KeyError, AttributeError):
        raise InputError(f"{program} get for {host}: the answer is not JSON with a Secret") from None
    source = f"credential helper {program}"
    if user == "<token>":  # docker's marker for an identity (refresh) token
        return Credentials(None, secret, source, identity_token=True)
    return Credentials(user, secret, source)
