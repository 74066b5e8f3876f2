"""`envbuilder new --try` for real: a venv with CUDA torch, nvcc compiles for sm_120, SASS read
from the built .so, imports in the env. One extension builds; the other fails the way the scan
cannot foresee (its <cstdint> sits behind an #ifdef), and the trial names diagnose's finding and
the patch envbuilder has for it, while the first is still built and verified."""

from __future__ import annotations

import json
import textwrap

import pytest
from newtrees import serve, write_index

from envbuilder.new import trial
from envbuilder.new.command import new
from envbuilder.new.index import SimpleIndex

from helpers import make_repo, run_cli

pytestmark = [pytest.mark.build, pytest.mark.compile]

TINY = {
    "ext/tinyadd/setup.py": textwrap.dedent("""\
        from setuptools import setup
        from torch.utils.cpp_extension import BuildExtension, CUDAExtension
        setup(name="tinyadd", packages=["tinyadd"], cmdclass={"build_ext": BuildExtension},
              ext_modules=[CUDAExtension("tinyadd._C", ["add.cu", "bind.cpp"])])
        """),
    "ext/tinyadd/tinyadd/__init__.py": "",
    "ext/tinyadd/add.cu": (
        "#include <torch/extension.h>\n"
        "__global__ void add_one(float* x, int n) { int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) x[i] += 1.0f; }\n"
        "void add_one_cuda(torch::Tensor x) { int n = x.numel(); add_one<<<(n + 255) / 256, 256>>>(x.data_ptr<float>(), n); }\n"
    ),
    "ext/tinyadd/bind.cpp": (
        "#include <torch/extension.h>\nvoid add_one_cuda(torch::Tensor x);\n"
        'PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("add_one", &add_one_cuda); }\n'
    ),
    # the scan sees <cstdint> in ids.h's includes; the compiler does not (it is behind an #ifdef)
    "ext/broken/setup.py": textwrap.dedent("""\
        from setuptools import setup
        from torch.utils.cpp_extension import BuildExtension, CppExtension
        setup(name="brokenids", cmdclass={"build_ext": BuildExtension}, ext_modules=[CppExtension("brokenids", ["ids.cpp"])])
        """),
    "ext/broken/ids.h": "#pragma once\n#ifdef NEVER_DEFINED\n#include <cstdint>\n#endif\n#include <vector>\n",
    "ext/broken/ids.cpp": '#include "ids.h"\nuint32_t count_ids(const std::vector<int>& v) { return v.size(); }\n',
    "README.md": "# Tiny\n\n## Installation\n```\npip install ./ext/tinyadd\npip install ./ext/broken\n```\n",
    "run.py": "import tinyadd._C\nimport brokenids\n",
}


def test_try_builds_each_extension_and_reports_the_failure(tmp_path, cuda):
    method = tmp_path / "tiny"
    make_repo(method, TINY)
    simple = write_index(tmp_path / "pypi", {})
    out = tmp_path / "out"
    with serve(simple.parent) as url:
        result = new(method.as_uri(), output=out, index=SimpleIndex(url + "/simple/", cache=tmp_path / "ic"))
    assert [e.name for e in result.draft.extensions] == ["tiny-brokenids", "tiny-tinyadd"]
    assert result.draft.extensions[0].patches == []  # the scan was fooled: only building tells

    report = trial.run(out, "tiny", arch="12.0", prefix=tmp_path / "research" / "env")
    assert report.failed_step is None, report.error
    by_name = {e.name: e for e in report.extensions}
    good, bad = by_name["tiny-tinyadd"], by_name["tiny-brokenids"]
    assert good.compiled and good.sass == {"12.0": "sass"} and good.imports is True and good.ok, good
    assert not bad.compiled and bad.step == "extensions" and not bad.ok
    assert [f["id"] for f in bad.findings][:1] == ["cstdint-missing"]
    assert bad.patches == ["cstdint"]
    assert not report.ok

    # the CLI: the same trial again in the same env (the venv is reused, the good wheel comes from
    # the cache, the failed one is tried again), rendered as JSON
    cli = run_cli(
        "new",
        str(method),
        "--output",
        str(tmp_path / "out2"),
        "--try",
        "--arch",
        "12.0",
        "--prefix",
        str(tmp_path / "research" / "env"),
        "--json",
        env={"ENVBUILDER_INDEX_URL": "http://127.0.0.1:9/simple/"},
    )
    assert cli.returncode == 1, cli.stderr
    data = json.loads(cli.stdout)
    tried = {e["name"]: e for e in data["try"]["extensions"]}
    assert tried["tiny-tinyadd"]["ok"] and tried["tiny-tinyadd"]["cache"] == "hit"
    assert tried["tiny-brokenids"]["patches"] == ["cstdint"]
