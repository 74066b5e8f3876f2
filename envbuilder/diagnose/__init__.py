"""Known failures in build, smoke, verify and run logs -> cause and fix.

The catalogue is data (signatures.yaml, next to this file); catalogue.py loads and checks it,
prefilter.py and scanner.py find it in a log, root cause first. Names are imported on first use:
patch files only need signature_ids(), and a plan must not pay for the scanner.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from envbuilder.diagnose.catalogue import CATALOGUE_FILE, Catalogue, Example, Signature, load, signature_ids
    from envbuilder.diagnose.scanner import Finding, matches, scan, scan_file

_HOME = {
    "CATALOGUE_FILE": "catalogue",
    "Catalogue": "catalogue",
    "Example": "catalogue",
    "Signature": "catalogue",
    "load": "catalogue",
    "signature_ids": "catalogue",
    "Finding": "scanner",
    "matches": "scanner",
    "scan": "scanner",
    "scan_file": "scanner",
}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name == "CATALOGUE":  # was a module-level tuple of signatures
        return __getattr__("Catalogue").default().signatures
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
