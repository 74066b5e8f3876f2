"""The shared binary cache: extension wheels as OCI artefacts on a real registry (127.0.0.1) and
in a shared folder (file://). Pushed, pulled into an empty cache, verified; damaged, tampered,
interrupted and concurrent pushes."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from registry import TokenServer

from envbuilder import cache, errors, remote
from envbuilder.folderstore import FolderStore
from envbuilder.host.compat import parse_arch_list

from helpers import cuda_wheel, key_inputs

ARCHS = parse_arch_list("12.0")
TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


@pytest.fixture
def alice(monkeypatch):
    monkeypatch.setenv("ENVBUILDER_REGISTRY_USERNAME", "alice")
    monkeypatch.setenv("ENVBUILDER_REGISTRY_PASSWORD", "wonderland")


@pytest.fixture(params=["oci", "file"])
def url(request, tmp_path, monkeypatch):
    """The same guarantees on a registry and in a shared folder."""
    if request.param == "file":
        return f"file://{tmp_path / 'shared-cache'}"
    registry = request.getfixturevalue("registry")
    monkeypatch.setenv("ENVBUILDER_REGISTRY_USERNAME", "alice")
    monkeypatch.setenv("ENVBUILDER_REGISTRY_PASSWORD", "wonderland")
    return registry.remote()


def built(tmp_path: Path, variant: str = "", sms=(120,), archs="12.0", payload=b"", where="build"):
    """A wheel as the extensions step leaves it: (key, wheel, metadata)."""
    inputs = key_inputs(archs=archs, variant=variant)
    wheel = cuda_wheel(tmp_path / where, sms, payload=payload)
    return (
        cache.wheel_key(inputs),
        wheel,
        {"inputs": inputs, "recipe": "demo", "source": {"url": "https://example.org/demo", "commit": "a" * 40}},
    )


def test_push_then_pull_into_an_empty_cache(url, tmp_path):
    first = cache.WheelCache(tmp_path / "machine1" / "wheels")
    key, wheel, meta = built(tmp_path)
    first.store(key, wheel, meta["inputs"], ARCHS, metadata=meta)
    entry = first.entries()[0]
    assert remote.open_remote(url, push=True).publish(key, entry.wheel, entry.metadata()).status == "pushed"

    second = cache.WheelCache(tmp_path / "machine2" / "wheels")
    assert second.lookup(key, ARCHS) == (None, "not cached")
    got, why = remote.restore(remote.open_remote(url), second, key, ARCHS)
    assert got is not None and why.startswith(f"fetched {wheel.name} from {url} (verified")
    assert got.read_bytes() == wheel.read_bytes()
    assert second.lookup(key, ARCHS)[1] == "cached"
    local = second.entries()[0]
    assert (local.origin, local.recipes, local.source["commit"]) == (url, ["demo"], "a" * 40)


def test_the_artefact_follows_the_oci_artifact_conventions(registry, alice, tmp_path):
    key, wheel, meta = built(tmp_path)
    target = remote.open_remote(registry.remote(), push=True)
    target.publish(key, wheel, meta)
    data, _ = target.store.get_manifest(f"ck-{key}")
    m = json.loads(data)
    assert m["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert m["artifactType"] == remote.ARTIFACT_TYPE and m["config"]["mediaType"] == remote.CONFIG_TYPE
    (layer,) = m["layers"]
    assert layer["mediaType"] == remote.WHEEL_TYPE
    assert layer["digest"] == "sha256:" + hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert layer["annotations"]["org.opencontainers.image.title"] == wheel.name
    a = m["annotations"]
    assert a["dev.envbuilder.key"] == key and a["dev.envbuilder.recipes"] == "demo"
    assert (a["dev.envbuilder.torch"], a["dev.envbuilder.cuda"], a["dev.envbuilder.python"]) == (
        "2.14.1",
        "13.0",
        "cp311",
    )
    assert a["dev.envbuilder.archs"] == "12.0" and a["org.opencontainers.image.revision"] == "a" * 40
    assert not any("created" in k for k in a)  # no timestamp: identical pushes, identical manifests
    listed = list(target.artefacts())
    assert [(x.key, x.extension, x.wheel) for x in listed] == [(key, "demo-ext", wheel.name)]


def test_finding_an_artefact_takes_one_request(registry, alice, tmp_path):
    key, wheel, meta = built(tmp_path)
    remote.open_remote(registry.remote(), push=True).publish(key, wheel, meta)
    source = remote.open_remote(registry.remote())
    source.store.ping()  # scheme and credentials settled, as after a build's first fetch
    seen: list[str] = []
    source.store.session.hooks["response"].append(lambda r, *a, **k: seen.append(f"{r.request.method} {r.status_code}"))
    missing = cache.wheel_key(key_inputs(variant="absent"))
    assert source.fetch(missing, ARCHS, tmp_path / "dest").wheel is None
    assert seen == ["GET 404"]
    seen.clear()
    assert source.fetch(key, ARCHS, tmp_path / "dest").wheel is not None
    assert seen == ["GET 200"] * 3  # manifest, config, wheel


def test_wrong_password_exits_2_with_a_clear_error(registry, tmp_path):
    from helpers import run_cli

    key, wheel, meta = built(tmp_path)
    cache.WheelCache(tmp_path / "cache" / "wheels").store(key, wheel, meta["inputs"], ARCHS, metadata=meta)
    env = {
        "ENVBUILDER_CACHE": str(tmp_path / "cache"),
        "ENVBUILDER_REGISTRY_USERNAME": "alice",
        "ENVBUILDER_REGISTRY_PASSWORD": "guessed",
    }
    result = run_cli("cache", "push", registry.remote(), "demo", env=env)
    assert result.returncode == 2, result.stderr
    assert "the registry refused user 'alice'" in result.stderr
    assert "ENVBUILDER_REGISTRY_USERNAME/ENVBUILDER_REGISTRY_PASSWORD" in result.stderr
    assert "guessed" not in result.stderr + result.stdout
    assert registry.revisions("lab/envbuilder-cache") == []


def test_a_registry_stopped_halfway_through_a_push(registry, alice, tmp_path):
    """SIGKILL the registry when half the wheel is uploaded: the push fails, no artefact is
    visible after the registry is back, and the next push completes."""
    key, wheel, meta = built(tmp_path, payload=os.urandom(3 * 1024 * 1024))
    size = wheel.stat().st_size

    def kill_at_half(done: int, total: int) -> None:
        if done >= size // 2 and registry.process.poll() is None:
            registry.kill()

    with pytest.raises(errors.RegistryUnavailable):
        remote.open_remote(registry.remote(), push=True).publish(key, wheel, meta, progress=kill_at_half)
    registry.restart()
    fresh = remote.open_remote(registry.remote(), push=True)
    assert fresh.store.get_manifest(f"ck-{key}") is None
    assert list(fresh.store.tags()) == [] and registry.revisions("lab/envbuilder-cache") == []
    assert fresh.fetch(key, ARCHS, tmp_path / "dest").reason == f"not in {registry.remote()}"
    assert fresh.publish(key, wheel, meta).status == "pushed"
    assert fresh.fetch(key, ARCHS, tmp_path / "dest").wheel is not None


def test_a_publisher_killed_halfway_leaves_nothing_in_the_folder(tmp_path):
    """file://: the publishing process is SIGKILLed halfway through the wheel's copy."""
    url = f"file://{tmp_path / 'shared'}"
    key, wheel, meta = built(tmp_path, payload=os.urandom(3 * 1024 * 1024))
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    script = textwrap.dedent(
        f"""
        import json, os, signal
        from pathlib import Path
        from envbuilder import remote
        size = Path({str(wheel)!r}).stat().st_size
        def die(done, total):
            if done >= size // 2:
                os.kill(os.getpid(), signal.SIGKILL)
        meta = json.loads(Path({str(tmp_path / "meta.json")!r}).read_text())
        remote.open_remote({url!r}, push=True).publish({key!r}, Path({str(wheel)!r}), meta, progress=die)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT)
    assert done.returncode == -9
    store = FolderStore(tmp_path / "shared")
    assert store.get_manifest(f"ck-{key}") is None and list(store.tags()) == []
    assert not store.blob_exists("sha256:" + hashlib.sha256(wheel.read_bytes()).hexdigest())
    target = remote.open_remote(url, push=True)
    assert target.publish(key, wheel, meta).status == "pushed"
    assert target.fetch(key, ARCHS, tmp_path / "dest").wheel is not None


def damage_layer(url: str, registry, key: str) -> None:
    """Change one byte of the wheel in the remote's own storage (same size)."""
    store = remote.open_remote(url).store
    layer = json.loads(store.get_manifest(f"ck-{key}")[0])["layers"][0]["digest"]
    path = registry.blob_data(layer) if url.startswith("oci://") else Path(url[7:]) / "blobs/sha256" / layer[7:]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_blob_changed_in_storage_is_refused_then_replaced(url, tmp_path, caplog, request):
    registry = request.getfixturevalue("registry") if url.startswith("oci://") else None
    key, wheel, meta = built(tmp_path)
    target = remote.open_remote(url, push=True)
    target.publish(key, wheel, meta)
    damage_layer(url, registry, key)

    with caplog.at_level(logging.WARNING, logger="envbuilder.remote"):
        got = target.fetch(key, ARCHS, tmp_path / "dest")
    assert got.wheel is None and got.refused
    assert got.reason.startswith(f"refused ck-{key} from {url}:") and "expected sha256:" in got.reason
    assert got.reason.endswith("compiling instead")
    assert any("refused" in r.message for r in caplog.records)
    assert list((tmp_path / "dest").iterdir()) == []  # nothing half-written
    # the caller compiles instead; then the same wheel (a reproducible build) is pushed again:
    # the registry keeps the damaged blob under its digest, so it travels gzip-wrapped
    again = target.publish(key, wheel, meta)
    assert again.status == "replaced" and "expected sha256:" in again.note
    fixed = remote.open_remote(url).fetch(key, ARCHS, tmp_path / "dest")
    assert fixed.wheel is not None and fixed.wheel.read_bytes() == wheel.read_bytes()
    # a rebuilt wheel with other bytes replaces a damaged artefact as a plain layer
    damage_layer(url, registry, key)
    _, rebuilt, _ = built(tmp_path, payload=b"rebuilt", where="rebuild")
    assert target.publish(key, rebuilt, meta).status == "replaced"
    assert remote.open_remote(url).fetch(key, ARCHS, tmp_path / "dest2").wheel.read_bytes() == rebuilt.read_bytes()


def push_crafted(target: remote.Remote, key: str, wheel: Path, metadata: dict, tmp: Path, edit=None) -> None:
    """Push an artefact without publish()'s checks, as a buggy or hostile client could."""
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    made = remote._build(key, wheel, sha, metadata, ARCHS, tmp, replaces=None, avoid=set())
    config = json.loads(made.config)
    manifest = json.loads(made.manifest)
    if edit:
        edit(config, manifest)
    data = json.dumps(config).encode()
    (tmp / "config").write_bytes(data)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    manifest["config"].update(digest=digest, size=len(data))
    target.store.push_blob(made.layer, made.layer_digest)
    target.store.push_blob(tmp / "config", digest)
    target.store.put_manifest(f"ck-{key}", json.dumps(manifest).encode(), remote.MANIFEST_TYPE)


def _other_inputs(config, manifest):
    config["inputs"]["torch"] = ["2.13.0", "12.8"]  # the wheel of another torch, under this key


def _other_key(config, manifest):
    manifest["annotations"]["dev.envbuilder.key"] = "0" * 64


def _other_sha(config, manifest):
    config["wheel"]["sha256"] = "0" * 64


def _other_type(config, manifest):
    manifest["artifactType"] = "application/vnd.example.other"


@pytest.mark.parametrize(
    ("edit", "asked", "refusal"),
    [
        (_other_inputs, "12.0", "key mismatch: asked for {key}, the recomputed from its inputs key is"),
        (_other_key, "12.0", "key mismatch: asked for {key}, the annotated key is " + "0" * 64),
        (_other_sha, "12.0", "sha256 expected " + "0" * 64),
        (_other_type, "12.0", "not an envbuilder extension-wheel artefact"),
        (None, "9.0;12.0", "no SASS for demo_ext/_C.cpython-311-x86_64-linux-gnu.so: 9.0"),
    ],
)
def test_a_tampered_or_unfit_artefact_is_refused(url, tmp_path, edit, asked, refusal):
    key, wheel, meta = built(tmp_path)
    target = remote.open_remote(url, push=True)
    push_crafted(target, key, wheel, meta, tmp_path, edit)
    got = target.fetch(key, parse_arch_list(asked), tmp_path / "dest")
    assert got.wheel is None and got.refused
    assert refusal.format(key=key) in got.reason
    if edit is not None:  # a correct push replaces the bad artefact
        assert target.publish(key, wheel, meta).status == "replaced"
        assert target.fetch(key, ARCHS, tmp_path / "dest").wheel is not None


def test_a_push_that_fails_verification_is_refused(url, tmp_path):
    target = remote.open_remote(url, push=True)
    key, wheel, meta = built(tmp_path, sms=(86,))  # claims 12.0 but holds sm_86 SASS only
    with pytest.raises(errors.ArtefactRefused, match=r"no SASS for .*: 12\.0"):
        target.publish(key, wheel, meta)
    key, wheel, meta = built(tmp_path, where="other")
    with pytest.raises(errors.ArtefactRefused, match="do not hash to that key"):
        target.publish(cache.wheel_key({"something": "else"}), wheel, meta)
    with pytest.raises(errors.ArtefactRefused, match="sha256 expected"):
        target.publish(key, wheel, {**meta, "sha256": "0" * 64})
    assert list(target.store.tags()) == []


PUBLISHER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from envbuilder import remote
    url, key, wheel, meta, go = sys.argv[1:6]
    target = remote.open_remote(url, push=True)
    while not Path(go).exists():
        time.sleep(0.005)
    done = target.publish(key, Path(wheel), json.loads(Path(meta).read_text()))
    print(json.dumps({"status": done.status, "digest": done.digest}))
    """
)


@pytest.mark.parametrize("same_bytes", [True, False])
def test_concurrent_pushes_of_one_key_leave_one_artefact(url, tmp_path, request, same_bytes):
    """Two machines (processes) publish one key at the same moment: both succeed and the tag
    names one verified artefact. Identical wheels: the remote holds exactly one manifest. A
    folder creates the tag with link(2): the first publisher's artefact wins and the other's
    manifest is gone. A registry has no conditional PUT (see remote.py for the race left)."""
    key, wheel, meta = built(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    wheels = [wheel, wheel if same_bytes else built(tmp_path, payload=b"machine 2", where="m2")[1]]
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PUBLISHER, url, key, str(w), str(tmp_path / "meta.json"), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for w in wheels
    ]
    go.touch()
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    results = [json.loads(out) for out, _ in outputs]
    source = remote.open_remote(url)
    tagged = source.store.get_manifest(f"ck-{key}")[1]
    reported = {r["digest"] for r in results}
    if same_bytes or url.startswith("file://"):
        assert reported == {tagged}, (results, tagged)  # both report the artefact the tag names
    else:
        assert tagged in reported
    assert [t for t in source.store.tags() if t.startswith("ck-")] == [f"ck-{key}"]
    got = source.fetch(key, ARCHS, tmp_path / "dest")
    assert got.wheel is not None and got.wheel.read_bytes() in {w.read_bytes() for w in wheels}
    if url.startswith("oci://"):
        revisions = request.getfixturevalue("registry").revisions("lab/envbuilder-cache")
        assert revisions == [tagged[7:]] if same_bytes else tagged[7:] in revisions and len(revisions) <= 2
    else:
        manifests = [b for b in (Path(url[7:]) / "blobs/sha256").iterdir() if b'"artifactType"' in b.read_bytes()]
        assert [m.name for m in manifests] == [tagged[7:]]  # the loser's manifest is gone
    if same_bytes:
        assert sorted(r["status"] for r in results) in (["already published", "pushed"], ["pushed", "pushed"])


def test_bearer_token_registry_end_to_end(registry, tmp_path, monkeypatch):
    """Push and pull through a token server (GHCR's scheme) in front of the registry."""
    with TokenServer(registry, {"bot": "ghp_secret"}) as tokens:
        monkeypatch.setenv("ENVBUILDER_REGISTRY_USERNAME", "bot")
        monkeypatch.setenv("ENVBUILDER_REGISTRY_PASSWORD", "ghp_secret")
        key, wheel, meta = built(tmp_path)
        assert remote.open_remote(tokens.remote(), push=True).publish(key, wheel, meta).status == "pushed"
        second = cache.WheelCache(tmp_path / "second" / "wheels")
        got, why = remote.restore(remote.open_remote(tokens.remote()), second, key, ARCHS)
        assert got is not None, why
        assert {i["scope"] for i in tokens.issued} == {
            "repository:lab/envbuilder-cache:pull,push",
            "repository:lab/envbuilder-cache:pull",
        }


def test_an_unreachable_remote_means_compile(tmp_path, alice):
    from registry import free_port

    got = remote.open_remote(f"oci://127.0.0.1:{free_port()}/lab/c").fetch("a" * 64, ARCHS, tmp_path)
    assert got.wheel is None and not got.refused and got.reason.startswith("could not fetch")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("oci://ghcr.io", "expected oci://host[:port]/namespace/name"),
        ("oci://ghcr.io/Lab/Cache", "is not a repository name"),
        ("file://relative/path", "needs an absolute path"),
        ("s3://bucket/x", "not oci://host/namespace/name or file:///path"),
    ],
)
def test_bad_remotes_are_named(value, message):
    with pytest.raises(errors.InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        remote.parse(value)


def test_cli_push_and_pull_by_recipe(url, tmp_path):
    """`cache push REMOTE RECIPE` from machine 1, `cache pull REMOTE RECIPE` into machine 2's
    empty cache; entries of other recipes stay behind."""
    from helpers import run_cli

    one = cache.WheelCache(tmp_path / "one" / "wheels")
    key, wheel, meta = built(tmp_path)
    one.store(key, wheel, meta["inputs"], ARCHS, metadata=meta)
    other_key, other_wheel, other_meta = built(tmp_path, variant="o", where="o")
    one.store(other_key, other_wheel, other_meta["inputs"], ARCHS, metadata={**other_meta, "recipe": "other"})
    push = run_cli("cache", "push", url, "demo", "--json", env={"ENVBUILDER_CACHE": str(tmp_path / "one")})
    assert push.returncode == 0, push.stderr
    assert [(r["key"], r["status"]) for r in json.loads(push.stdout)["results"]] == [(key, "pushed")]

    pull = run_cli("cache", "pull", url, "demo", "--json", env={"ENVBUILDER_CACHE": str(tmp_path / "two")})
    assert pull.returncode == 0, pull.stderr
    assert [(r["key"], r["status"]) for r in json.loads(pull.stdout)["results"]] == [(key, "pulled")]
    two = cache.WheelCache(tmp_path / "two" / "wheels")
    assert [e.key for e in two.entries()] == [key] and two.lookup(key, ARCHS)[1] == "cached"
    again = run_cli("cache", "pull", url, "--json", env={"ENVBUILDER_CACHE": str(tmp_path / "two")})
    assert [r["status"] for r in json.loads(again.stdout)["results"]] == ["already cached"]
    nothing = run_cli("cache", "push", url, "nosuchrecipe", env={"ENVBUILDER_CACHE": str(tmp_path / "one")})
    assert nothing.returncode == 2 and "no extension wheel of nosuchrecipe" in nothing.stderr


KERNEL = """
extern "C" __global__ void envb_scale(float* x, float a, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] *= a;
}
extern "C" int envb_launch(float* x, float a, int n) {
  envb_scale<<<(n + 255) / 256, 256>>>(x, a, n);
  return 0;
}
"""


@pytest.mark.compile
def test_a_real_nvcc_built_wheel_travels_verified(registry, alice, tmp_path, cuda):
    """A wheel holding a shared object nvcc built for sm_120: pushed, pulled with the SASS check
    passing for 12.0; asking for 9.0 as well is refused (there is no sm_90 SASS in it)."""
    import zipfile

    src = tmp_path / "scale.cu"
    src.write_text(KERNEL)
    so = tmp_path / "_C.so"
    subprocess.run(
        [
            str(cuda.nvcc),
            "-shared",
            "-Xcompiler",
            "-fPIC",
            "-gencode=arch=compute_120,code=sm_120",
            "-o",
            str(so),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    wheel = tmp_path / "envb_scale-0.1-cp311-cp311-linux_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.write(so, "envb_scale/_C.cpython-311-x86_64-linux-gnu.so")
    inputs = key_inputs(extension="envb-scale")
    key = cache.wheel_key(inputs)
    target = remote.open_remote(registry.remote(), push=True)
    assert target.publish(key, wheel, {"inputs": inputs, "recipe": "demo"}).status == "pushed"
    got = target.fetch(key, ARCHS, tmp_path / "dest")
    assert got.wheel is not None and got.config["wheel"]["sass"] == {
        "envb_scale/_C.cpython-311-x86_64-linux-gnu.so": ["sm_120"]
    }
    refused = target.fetch(key, parse_arch_list("9.0;12.0"), tmp_path / "dest2")
    assert refused.wheel is None and "no SASS for envb_scale/_C.cpython-311-x86_64-linux-gnu.so: 9.0" in refused.reason
