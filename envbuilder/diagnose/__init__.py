"""Known failures in build, smoke, verify and run logs -> cause and fix.

The catalogue is data (signatures.yaml, next to this file); catalogue.py loads and checks it,
prefilter.py and scanner.py find it in a log, root cause first. Names are imported on first use:
patch files only need signature_ids(), and a plan must not pay for the scanner.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from envbuilder.diagnose.catalogue import CATALOGUE_FILE as CATALOGUE_FILE
    from envbuilder.diagnose.catalogue import Catalogue as Catalogue
    from envbuilder.diagnose.catalogue import Example as Example
    from envbuilder.diagnose.catalogue import Signature as Signature
    from envbuilder.diagnose.catalogue import load as load
    from envbuilder.diagnose.catalogue import signature_ids as signature_ids
    from envbuilder.diagnose.scanner import Finding as Finding
    from envbuilder.diagnose.scanner import matches as matches
    from envbuilder.diagnose.scanner import scan as scan
    from envbuilder.diagnose.scanner import scan_file as scan_file

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
__all__ = [
    "CATALOGUE_FILE",
    "Catalogue",
    "Example",
    "Finding",
    "Signature",
    "load",
    "matches",
    "scan",
    "scan_file",
    "signature_ids",
]


def __getattr__(name: str) -> Any:
    if name == "CATALOGUE":  # was a module-level tuple of signatures
        return __getattr__("Catalogue").default().signatures
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
