"""Loader and model: valid recipes load; every malformed input is a RecipeError naming file:line:key."""

from __future__ import annotations

import contextlib
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.version import Version

from envbuilder.errors import RecipeError
from envbuilder.recipe import yamlfile
from envbuilder.recipe.catalog import Catalog, DataRoot
from envbuilder.recipe.when import parse_condition

from helpers import write_recipe

COMMIT = "0123456789abcdef0123456789abcdef01234567"

EXTENSION = """\
name: knn
summary: a test extension
import: knn_ext
"""

GOOD = f"""\
name: demo
summary: a demo recipe
source:
  git: https://github.com/example/demo.git
  commit: {COMMIT}
python: "3.12"
torch:
  cu128: {{torch: "==2.9.1", index: "https://download.pytorch.org/whl/cu128"}}
  cu130: {{torch: ">=2.11", torchvision: ">=0.26"}}
requirements:
  - numpy<2
  - req: plyfile
    when: {{python: ">=3.10"}}
    why: reads point clouds
extensions:
  - use: knn
    path: submodules/knn
"""


def catalog(tmp_path: Path) -> Catalog:
    ext = tmp_path / "extensions" / "knn" / "extension.yaml"
    ext.parent.mkdir(parents=True, exist_ok=True)
    ext.write_text(EXTENSION)
    return Catalog([DataRoot.of(tmp_path, "test")])


def load(tmp_path: Path, text: str):
    write_recipe(tmp_path, "demo", text)
    return catalog(tmp_path).recipe("demo")


def error_for(tmp_path: Path, text: str) -> RecipeError:
    with pytest.raises(RecipeError) as info:
        load(tmp_path, text)
    return info.value


def test_good_recipe_loads(tmp_path):
    recipe = load(tmp_path, GOOD)
    assert recipe.name == "demo"
    assert recipe.source.commit == COMMIT
    assert recipe.python.contains("3.12.4") and not recipe.python.contains("3.11.9")
    cu128, cu130 = recipe.torch
    assert cu128.cuda == Version("12.8") and cu128.index.endswith("/cu128")
    assert cu130.requirements() == ["torch>=2.11", "torchvision>=0.26"]
    assert [r.text for r in recipe.requirements] == ["numpy<2", "plyfile"]
    assert recipe.requirements[1].why == "reads point clouds"
    assert recipe.extensions[0].extension.import_name == "knn_ext"
    assert len(recipe.sha256) == 64


def test_sdist_env_is_read_with_its_site_placeholder(tmp_path):
    text = GOOD.replace("    why: reads point clouds", "    sdist_env: {CPLUS_INCLUDE_PATH: '{site}/eigen3'}")
    assert load(tmp_path, text).requirements[1].sdist_env == (("CPLUS_INCLUDE_PATH", "{site}/eigen3"),)


def test_builtin_recipes_all_load():
    c = Catalog.default()
    names = c.recipe_files()
    assert "canary" in names
    for name in names:
        c.recipe(name)


@pytest.mark.parametrize(
    ("replace", "by", "line", "needle"),
    [
        (f"commit: {COMMIT}", "commit: abc123", 5, "full 40-character commit hash"),
        (f"commit: {COMMIT}", "commit: main", 5, "full 40-character commit hash"),
        ('python: "3.12"', "python: 3.12", 6, "quote versions"),
        ('python: "3.12"', "pyhton: '3.12'", 6, "did you mean 'python'"),
        ("  - numpy<2", "  - numpy<<2", 11, "not a valid requirement"),
        ("  cu128:", "  cuda128:", 8, "unknown CUDA build tag"),
        ('when: {python: ">=3.10"}', 'when: {cudaa: ">=3.10"}', 13, "unknown variable 'cudaa'"),
        ('when: {python: ">=3.10"}', 'when: {python: "fast"}', 13, "not a version specifier"),
        ("    path: submodules/knn", "    path: ../outside", 17, "leaves the source tree"),
        ("  - use: knn", "  - use: knnn", 16, "unknown extension 'knnn'"),
        ("name: demo", "name: other", 1, "does not match the file name"),
        ("summary: a demo recipe", "summary: [a, list]", 2, "expected a string"),
        ("extensions:\n  - use: knn\n    path: submodules/knn\n", "extensions: knn\n", 15, "expected a list"),
        (
            "    why: reads point clouds",
            "    sdist_env: {INC: '{prefix}/include'}",
            14,
            "unknown placeholder(s) prefix",
        ),
        ("    why: reads point clouds", "    sdist_env: {INC: '{site'}", 14, "sdist_env INC"),
        ("    why: reads point clouds", "    sdist_env: {1INC: x}", 14, "not an environment variable name"),
    ],
)
def test_bad_recipes_name_file_line_and_key(tmp_path, replace, by, line, needle):
    assert replace in GOOD
    err = error_for(tmp_path, GOOD.replace(replace, by, 1))
    assert needle in err.message + (err.hint or "")
    assert err.file and err.file.endswith("demo.yaml")
    assert err.line == line, err.message
    assert err.exit_code == 2


def test_yaml_syntax_error_has_line(tmp_path):
    err = error_for(tmp_path, "name: demo\nsummary: [unclosed\npython: '3.12'\n")
    assert "YAML syntax error" in err.message and err.line is not None and err.line >= 2


def test_duplicate_key_is_an_error(tmp_path):
    err = error_for(tmp_path, GOOD + "python: '3.11'\n")
    assert "duplicate key 'python'" in err.message and err.line == 18


def test_missing_key_and_empty_file(tmp_path):
    err = error_for(tmp_path, "name: demo\nsummary: x\n")
    assert "missing required key 'source'" in err.message
    assert "file is empty" in error_for(tmp_path, "").message


def test_not_utf8(tmp_path):
    write_recipe(tmp_path, "demo", "")
    (tmp_path / "recipes" / "demo.yaml").write_bytes(b"name: demo\nsummary: \xff\xfe\n")
    with pytest.raises(RecipeError, match="not UTF-8") as info:
        catalog(tmp_path).recipe("demo")
    assert info.value.line == 2


def test_envbuilder_version_requirement(tmp_path):
    err = error_for(tmp_path, "envbuilder: '>=99'\n" + GOOD)
    assert "needs envbuilder >=99" in err.message


def test_conditions():
    cond = parse_condition({"cuda": ">=12.5", "gcc": ">=13"})
    assert cond.evaluate({"cuda": Version("12.8"), "gcc": Version("13.2")}) is True
    assert cond.evaluate({"cuda": Version("12.8"), "gcc": Version("12.2")}) is False
    assert cond.evaluate({"cuda": Version("12.8")}) is None  # gcc unknown: undecided
    arch = parse_condition({"arch": ">=12.0"})
    assert arch.evaluate({"arch": [Version("9.0"), Version("12.0")]}) is True
    assert arch.evaluate({"arch": [Version("9.0")]}) is False
    assert parse_condition({"python": "3.12"}).evaluate({"python": Version("3.12.7")}) is True
    with pytest.raises(ValueError, match="unknown variable"):
        parse_condition({"cudnn": ">=9"})


def test_yaml_line_numbers():
    data = yamlfile.loads(
        textwrap.dedent("""\
        a: 1
        b:
          - x
          - y
        """)
    )
    assert data.key_lines == {"a": 1, "b": 2}
    assert data["b"].item_lines == [3, 4]


# --- fuzzing: whatever the bytes, the loader raises RecipeError or returns a Recipe -----------------

yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30))
yaml_values = st.recursive(
    yaml_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
KEYS = [
    "name",
    "summary",
    "source",
    "python",
    "torch",
    "requirements",
    "extensions",
    "patches",
    "env",
    "license",
    "envbuilder",
]
recipe_like = st.dictionaries(st.sampled_from(KEYS), yaml_values, max_size=len(KEYS))


def _dump(value) -> str:
    import yaml

    return yaml.safe_dump(value, allow_unicode=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=300))
def test_fuzz_arbitrary_text(tmp_path, text):
    _load_only_spec_errors(tmp_path, text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=recipe_like)
def test_fuzz_recipe_shaped_documents(tmp_path, data):
    _load_only_spec_errors(tmp_path, _dump(data))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=len(GOOD)), junk=st.text(max_size=10))
def test_fuzz_truncated_and_spliced_good_recipe(tmp_path, cut, junk):
    _load_only_spec_errors(tmp_path, GOOD[:cut] + junk + GOOD[cut:])


def _load_only_spec_errors(tmp_path: Path, text: str) -> None:
    path = write_recipe(tmp_path, "demo", "")
    path.write_bytes(text.encode("utf-8", "replace"))
    with contextlib.suppress(RecipeError):  # the only error a recipe may cause; anything else fails
        catalog(tmp_path).recipe("demo")
