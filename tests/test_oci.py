"""The OCI distribution client against a real registry on 127.0.0.1: uploads, manifests, Basic
and Bearer auth, credentials from the environment and Docker's config.json, transport policy."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from registry import TokenServer

from envbuilder import credentials, errors, oci
from envbuilder.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
REPO = "lab/envbuilder-cache"


def client(registry, user="alice", password="wonderland", **kw) -> oci.Client:
    creds = credentials.Credentials(user, password, "the test") if user else None
    return oci.Client(registry.host, REPO, credentials=creds, push=True, **kw)


def blob_file(tmp_path: Path, data: bytes, name: str = "blob") -> tuple[Path, str]:
    path = tmp_path / name
    path.write_bytes(data)
    return path, "sha256:" + hashlib.sha256(data).hexdigest()


def test_parse_challenges():
    assert oci.parse_challenges('Basic realm="basic-realm"') == [("basic", {"realm": "basic-realm"})]
    header = 'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:lab/c:pull,push"'
    assert oci.parse_challenges(header) == [
        ("bearer", {"realm": "https://ghcr.io/token", "service": "ghcr.io", "scope": "repository:lab/c:pull,push"})
    ]
    two = oci.parse_challenges('Basic realm="x", Bearer realm="https://a/t",error="insufficient_scope"')
    assert [c[0] for c in two] == ["basic", "bearer"] and two[1][1]["error"] == "insufficient_scope"
    assert oci.parse_challenges('Bearer realm="a\\"b"')[0][1]["realm"] == 'a"b'


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1:5000", True), ("127.8.9.1", True), ("localhost:5000", True), ("[::1]:5000", True),
     ("ghcr.io", False), ("10.0.0.1:5000", False), ("[2001:db8::1]:443", False)],
)  # fmt: skip
def test_is_loopback(host, loopback):
    assert oci.is_loopback(host) is loopback


def test_blob_upload_monolithic_and_chunked(registry, tmp_path):
    c = client(registry)
    for chunk_size, data in ((None, os.urandom(300_000)), (100_000, os.urandom(250_001))):
        path, digest = blob_file(tmp_path, data)
        assert not c.blob_exists(digest)
        assert c.push_blob(path, digest, chunk_size=chunk_size) is True
        assert c.blob_exists(digest)
        assert c.push_blob(path, digest) is False  # already there: nothing sent
        got = c.get_blob(digest, tmp_path / "got", size=len(data))
        assert got.read_bytes() == data


def test_a_blob_damaged_in_storage_is_never_written_out(registry, tmp_path):
    c = client(registry)
    data = os.urandom(50_000)
    path, digest = blob_file(tmp_path, data)
    c.push_blob(path, digest)
    stored = registry.blob_data(digest)
    stored.write_bytes(b"X" + stored.read_bytes()[1:])  # same size, one byte changed
    with pytest.raises(errors.DigestMismatch, match=f"expected {digest}, got sha256:"):
        c.get_blob(digest, tmp_path / "out" / "blob", size=len(data))
    assert list((tmp_path / "out").iterdir()) == []  # neither the file nor a partial one


def test_manifests_by_tag_and_digest(registry, tmp_path):
    c = client(registry)
    config, cdigest = blob_file(tmp_path, b"{}", "config")
    c.push_blob(config, cdigest)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": oci.MANIFEST_TYPE,
            "artifactType": "application/vnd.envbuilder.test.v1",
            "config": {"mediaType": oci.EMPTY_TYPE, "digest": cdigest, "size": 2},
            "layers": [{"mediaType": oci.EMPTY_TYPE, "digest": cdigest, "size": 2}],
            "annotations": {"dev.envbuilder.key": "k"},
        },
        separators=(",", ":"),
    ).encode()
    assert c.get_manifest("t1") is None
    digest = c.put_manifest("t1", manifest)
    assert digest == oci.sha256_digest(manifest)
    assert c.get_manifest("t1") == (manifest, digest)  # the registry keeps the bytes, artifactType included
    assert c.get_manifest(digest) == (manifest, digest)
    assert list(c.tags()) == ["t1"]
    assert c.delete_manifest(digest) is True
    assert c.get_manifest("t1") is None


def test_wrong_password_is_a_clear_error_with_exit_2(registry):
    with pytest.raises(errors.RegistryAuthError) as caught:
        client(registry, password="not-the-password").ping()
    err = caught.value
    assert err.exit_code == 2
    assert "refused user 'alice'" in err.message and "credentials from the test" in err.message
    assert "not-the-password" not in err.message + (err.hint or "")


def test_no_credentials_says_where_to_put_them(registry):
    with pytest.raises(errors.RegistryAuthError, match="needs credentials and none were found") as caught:
        client(registry, user=None).ping()
    assert "ENVBUILDER_REGISTRY_USERNAME" in caught.value.hint and caught.value.exit_code == 2


def test_bearer_token_flow(registry, tmp_path):
    """A token server in front of the registry answers 401 Bearer; the client asks the realm for
    a token for the repository's scope with its Basic credentials, retries with the token, and
    asks again when the token is revoked."""
    with TokenServer(registry, {"bob": "ghp_token"}) as tokens:
        c = oci.Client(tokens.host, REPO, credentials=credentials.Credentials("bob", "ghp_token", "env"), push=True)
        path, digest = blob_file(tmp_path, os.urandom(20_000))
        assert c.push_blob(path, digest) is True
        assert tokens.issued == [{"service": "envbuilder-test", "scope": f"repository:{REPO}:pull,push"}]
        assert c._authorization and c._authorization.startswith("Bearer ")
        tokens.revoke_all()
        assert c.get_blob(digest, tmp_path / "got").read_bytes() == path.read_bytes()
        assert len(tokens.issued) == 2 and tokens.bearer_requests >= 4

        wrong = oci.Client(tokens.host, REPO, credentials=credentials.Credentials("bob", "wrong", "env"))
        with pytest.raises(errors.RegistryAuthError, match="refused user 'bob'") as caught:
            wrong.blob_exists(digest)
        assert caught.value.exit_code == 2
        with pytest.raises(errors.RegistryAuthError, match="needs credentials"):
            oci.Client(tokens.host, REPO).blob_exists(digest)


def test_credentials_from_the_environment(monkeypatch):
    monkeypatch.setenv("ENVBUILDER_REGISTRY_USERNAME", "u")
    with pytest.raises(InputError, match="ENVBUILDER_REGISTRY_PASSWORD is not set"):
        credentials.for_registry("ghcr.io")
    monkeypatch.setenv("ENVBUILDER_REGISTRY_PASSWORD", "p")
    found = credentials.for_registry("ghcr.io")
    assert (found.username, found.secret) == ("u", "p") and "p" not in repr(found)


def write_docker_config(tmp_path: Path, monkeypatch, config: dict) -> None:
    folder = tmp_path / "docker"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))


@pytest.mark.parametrize("form", ["{host}", "https://{host}", "http://{host}/v2/"])
def test_docker_config_auths(registry, tmp_path, monkeypatch, form):
    auth = base64.b64encode(b"alice:wonderland").decode()
    write_docker_config(tmp_path, monkeypatch, {"auths": {form.format(host=registry.host): {"auth": auth}}})
    found = credentials.for_registry(registry.host)
    assert found.username == "alice" and "config.json" in found.source
    oci.Client(registry.host, REPO, credentials=found).ping()


def helper_script(tmp_path: Path, name: str, answers: dict[str, tuple[str, str]]) -> Path:
    """A real docker-credential-<name> program on PATH, as `docker login` would use."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / f"docker-credential-{name}"
    script.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent(
            f"""
            import json, sys
            answers = {answers!r}
            assert sys.argv[1] == "get"
            server = sys.stdin.read().strip()
            if server not in answers:
                print("credentials not found in native keychain"); sys.exit(1)
            user, secret = answers[server]
            print(json.dumps({{"ServerURL": server, "Username": user, "Secret": secret}}))
            """
        )
    )
    script.chmod(0o755)
    return bin_dir


@pytest.mark.parametrize("kind", ["credHelpers", "credsStore"])
def test_docker_credential_helpers(registry, tmp_path, monkeypatch, kind):
    bin_dir = helper_script(tmp_path, "envtest", {registry.host: ("alice", "wonderland")})
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    config = {"credHelpers": {registry.host: "envtest"}} if kind == "credHelpers" else {"credsStore": "envtest"}
    write_docker_config(tmp_path, monkeypatch, config)
    found = credentials.for_registry(registry.host)
    assert found.source == "credential helper docker-credential-envtest"
    oci.Client(registry.host, REPO, credentials=found).ping()
    assert credentials.for_registry("other.example:5000") is None  # the helper knows nothing of it


def test_a_missing_credential_helper_is_named(tmp_path, monkeypatch):
    write_docker_config(tmp_path, monkeypatch, {"credHelpers": {"ghcr.io": "nosuchhelper"}})
    with pytest.raises(InputError, match="docker-credential-nosuchhelper.*not on PATH"):
        credentials.for_registry("ghcr.io")


def test_plain_http_only_for_loopback_or_insecure(tmp_path):
    """In a network namespace of its own, a plain-HTTP registry stand-in listens on 10.88.0.1,
    an address that is not loopback: the client refuses plain HTTP there, unless insecure=True."""
    script = textwrap.dedent(
        """
        import json, subprocess, threading
        from http.server import BaseHTTPRequestHandler, HTTPServer
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "addr", "add", "10.88.0.1/32", "dev", "lo"], check=True)
        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(401); self.send_header("WWW-Authenticate", 'Basic realm="r"')
                self.send_header("Content-Length", "0"); self.end_headers()
            def log_message(self, *a): pass
        server = HTTPServer(("10.88.0.1", 8080), H)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        from envbuilder import oci
        out = {}
        for insecure in (False, True):
            try:
                oci.Client("10.88.0.1:8080", "a/b", insecure=insecure, timeout=10).ping()
            except Exception as exc:
                out[str(insecure)] = [type(exc).__name__, exc.message, exc.hint]
        print(json.dumps(out))
        """
    )
    done = subprocess.run(["unshare", "-n", sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0 and "unshare" in done.stderr and "Operation not permitted" in done.stderr:
        pytest.skip("unshare -n is not permitted here (needs root or user namespaces)")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["False"][0] == "RegistryUnavailable" and "--insecure" in out["False"][2]
    assert out["True"][0] == "RegistryAuthError"  # reached over plain HTTP: it wants credentials


def test_an_identity_token_from_docker_config(registry, tmp_path, monkeypatch):
    """`docker login` against an OAuth2 registry stores an identitytoken (a refresh token): the
    client exchanges it at the realm with a POST for an access token."""
    with TokenServer(registry, {}, refresh_tokens=("refresh-me",)) as tokens:
        write_docker_config(tmp_path, monkeypatch, {"auths": {tokens.host: {"identitytoken": "refresh-me"}}})
        found = credentials.for_registry(tokens.host)
        assert found.identity_token and found.username is None
        oci.Client(tokens.host, REPO, credentials=found).ping()
        assert tokens.issued and tokens.bearer_requests == 1
