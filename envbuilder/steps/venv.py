"""venv: an isolated virtual environment at <prefix>/venv (uv when present, else python -m venv)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from envbuilder import installer
from envbuilder.context import Context

FACTS = (
    "import json,sys,sysconfig;print(json.dumps({'version':'%d.%d.%d'%sys.version_info[:3],"
    "'platlib':sysconfig.get_paths()['platlib'],'purelib':sysconfig.get_paths()['purelib']}))"
)


def run(ctx: Context, inputs: dict) -> dict:
    venv = ctx.layout.venv
    if venv.exists():
        shutil.rmtree(venv)  # inputs changed: start clean rather than patch an old env
    tool = installer.for_context(ctx)
    tool.create_venv(Path(inputs["python"]), venv, system_site_packages=inputs["system_site_packages"])
    facts = json.loads(ctx.capture([ctx.layout.python, "-c", FACTS]))
    ctx.note(f"Python {facts['version']} venv at {venv}")
    return {"path": str(venv), "python": str(ctx.layout.python), **facts}
