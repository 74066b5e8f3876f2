"""Shipped patches that change what a method's code computes, run with a real torch (the session's
canary env) on small modules written here in the shape the patch targets: the patched function
must give what the original gave."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

from test_patching import GCC13

from envbuilder import patching
from envbuilder.recipe.catalog import Catalog
from envbuilder.recipe.model import PatchUse

# The patch's target, written here: the module's imports and precision switch, and an explicit
# softmax(q k^T * scale) v under the name and signature the patch looks for.
ATTENTION = """\
import torch
import torch.nn.functional as F

_ATTN_PRECISION = "fp32"


def legacy_attention(q, k, v, scale, mask=None):
    weights = torch.softmax(torch.bmm(q.float(), k.float().transpose(1, 2)) * scale, dim=-1)
    return torch.bmm(weights, v.float()).to(v.dtype)
"""

COMPARE = """\
import importlib.util, sys, torch
def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
old, new = load(sys.argv[1], "old"), load(sys.argv[2], "new")
torch.manual_seed(0)
for rows, n, m, d in [(10, 300, 300, 64), (4, 77, 20, 40)]:  # self-attention; a shorter context
    q, k, v = torch.randn(rows, n, d), torch.randn(rows, m, d), torch.randn(rows, m, d)
    scale = d ** -0.5
    a, b = old.legacy_attention(q, k, v, scale), new.legacy_attention(q, k, v, scale)
    assert b.shape == a.shape and b.dtype == a.dtype, (b.shape, a.shape, b.dtype, a.dtype)
    err = (a - b).abs().max().item()
    assert err < 1e-5, err
    print(rows, n, m, d, err)
"""


def test_sdpa_attention_computes_what_the_explicit_matrix_did(canary_env: Path, tmp_path: Path) -> None:
    root = tmp_path / "src"
    target = root / "cap4d" / "mmdm" / "net" / "attention.py"
    target.parent.mkdir(parents=True)
    target.write_text(ATTENTION)
    original = tmp_path / "original.py"
    original.write_text(ATTENTION)
    patch = PatchUse(patch=Catalog.default().patch("sdpa-attention"))
    patching.apply(root, [patch], GCC13)
    patched = target.read_text()
    assert "envbuilder: sdpa-attention" in patched and "scaled_dot_product_attention" in patched
    assert patching.compute(root, [patch], GCC13)[0].status == "already applied"

    script = tmp_path / "compare.py"
    script.write_text(textwrap.dedent(COMPARE))
    python = canary_env / "venv" / "bin" / "python"
    done = subprocess.run([str(python), str(script), str(original), str(target)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 2, done.stdout
