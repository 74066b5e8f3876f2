"""venv: an isolated virtual environment at <prefix>/venv (uv when present, else python -m venv)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from envbuilder import installer
from envbuilder.context import Context, Data

SITE_DIRS = "import json,site;print(json.dumps(site.getsitepackages()))"
SYS_PATH = "import json,sys;print(json.dumps(sys.path))"
INHERIT_PTH = "_envbuilder_inherit.pth"

FACTS = (
    "import json,sys,sysconfig;print(json.dumps({'version':'%d.%d.%d'%sys.version_info[:3],"
    "'platlib':sysconfig.get_paths()['platlib'],'purelib':sysconfig.get_paths()['purelib']}))"
)


def run(ctx: Context, inputs: Data) -> Data:
    venv = ctx.layout.venv
    if venv.exists():
        shutil.rmtree(venv)  # inputs changed: start clean rather than patch an old env
    tool = installer.for_context(ctx)
    tool.create_venv(Path(inputs["python"]), venv, system_site_packages=inputs["system_site_packages"])
    facts = json.loads(ctx.capture([ctx.layout.python, "-c", FACTS]))
    inherited = (
        _inherit_site_packages(ctx, Path(inputs["python"]), Path(facts["platlib"]))
        if inputs["system_site_packages"]
        else []
    )
    ctx.note(f"Python {facts['version']} venv at {venv}" + (f", seeing {', '.join(inherited)}" if inherited else ""))
    return {"path": str(venv), "python": str(ctx.layout.python), "inherited_site_packages": inherited, **facts}


def _inherit_site_packages(ctx: Context, interpreter: Path, platlib: Path) -> list[str]:
    """--system-site-packages exposes the *base* interpreter's packages. When the chosen Python
    is itself a venv (a torch install in /opt/torch/.venv, a conda env), its site-packages would
    stay invisible: add them after the env's own with a .pth file."""
    wanted = json.loads(ctx.capture([interpreter, "-c", SITE_DIRS]).strip().splitlines()[-1])
    visible = set(json.loads(ctx.capture([ctx.layout.python, "-c", SYS_PATH]).strip().splitlines()[-1]))
    missing = [p for p in wanted if p not in visible and Path(p).is_dir()]
    if missing:
        (platlib / INHERIT_PTH).write_text("\n".join(missing) + "\n")
    return missing
