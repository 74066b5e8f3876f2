"""venv: an isolated virtual environment at <prefix>/venv (uv when present, else python -m venv)."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, TypedDict

from envbuilder.context import Data, Layout, StepContext
from envbuilder.resolve import Resolved
from envbuilder.steps.protocol import Deps

NAME = "venv"
DEPENDS: tuple[str, ...] = ("toolchain",)
VOLATILE = False
# pip/uv killed mid-install can leave a package's metadata without all of its files, which
# "already satisfied" would then accept: rebuild the venv rather than trust it.
DISTRUST_AFTER_CUT: tuple[str, ...] = ("wheels",)

SITE_DIRS = "import json,site;print(json.dumps(site.getsitepackages()))"
SYS_PATH = "import json,sys;print(json.dumps(sys.path))"
INHERIT_PTH = "_envbuilder_inherit.pth"

FACTS = (
    "import json,sys,sysconfig;print(json.dumps({'version':'%d.%d.%d'%sys.version_info[:3],"
    "'platlib':sysconfig.get_paths()['platlib'],'purelib':sysconfig.get_paths()['purelib']}))"
)


@dataclass(frozen=True)
class Inputs:
    python: str
    python_version: str
    installer: Literal["uv", "pip"]
    system_site_packages: bool

    def key(self) -> Data:
        return asdict(self)


class Outputs(TypedDict):
    path: str
    python: str
    installer: Literal["uv", "pip"]  # who made the venv installs into it
    inherited_site_packages: list[str]
    version: str
    platlib: str
    purelib: str


def inputs(r: Resolved) -> tuple[str, Inputs]:
    inherit = r.options.system_site_packages
    summary = f"{r.installer} venv with Python {r.interpreter.version}" + (
        " (+ system site-packages)" if inherit else ""
    )
    return summary, Inputs(str(r.interpreter.path), str(r.interpreter.version), r.installer, inherit)


def run(ctx: StepContext, inputs: Inputs, deps: Deps) -> Outputs:
    from envbuilder import installer

    venv = ctx.layout.venv
    if venv.exists():
        shutil.rmtree(venv)  # inputs changed: start clean rather than patch an old env
    tool = installer.for_env(inputs.installer, ctx)
    tool.create_venv(Path(inputs.python), venv, system_site_packages=inputs.system_site_packages)
    facts = json.loads(ctx.capture([ctx.layout.python, "-c", FACTS]))
    inherited = (
        _inherit_site_packages(ctx, Path(inputs.python), Path(facts["platlib"])) if inputs.system_site_packages else []
    )
    ctx.note(f"Python {facts['version']} venv at {venv}" + (f", seeing {', '.join(inherited)}" if inherited else ""))
    return Outputs(
        path=str(venv),
        python=str(ctx.layout.python),
        installer=inputs.installer,
        inherited_site_packages=inherited,
        version=facts["version"],
        platlib=facts["platlib"],
        purelib=facts["purelib"],
    )


def still_valid(layout: Layout, outputs: Outputs) -> bool:
    return layout.python.exists()


def _inherit_site_packages(ctx: StepContext, interpreter: Path, platlib: Path) -> list[str]:
    """--system-site-packages exposes the *base* interpreter's packages. When the chosen Python
    is itself a venv (a torch install in /opt/torch/.venv, a conda env), its site-packages would
    stay invisible: add them after the env's own with a .pth file."""
    wanted = json.loads(ctx.capture([interpreter, "-c", SITE_DIRS]).strip().splitlines()[-1])
    visible = set(json.loads(ctx.capture([ctx.layout.python, "-c", SYS_PATH]).strip().splitlines()[-1]))
    missing = [p for p in wanted if p not in visible and Path(p).is_dir()]
    if missing:
        (platlib / INHERIT_PTH).write_text("\n".join(missing) + "\n")
    return missing
