"""What a build step is. Each step is one module in envbuilder/steps/ with these members, and
one line in the list in envbuilder/steps/__init__.py:

    NAME                 its name, as `plan` and the manifest show it
    DEPENDS              the earlier steps it builds on: its key chains their keys, and `run` may
                         read their outputs (and those of the steps they build on, whose keys
                         theirs chain in turn)
    VOLATILE             True when it looks at things that change outside envbuilder, so it runs
                         on every build (assets)
    DISTRUST_AFTER_CUT   steps whose cut-off run (kill -9, Ctrl-C) makes this step's finished
                         result untrustworthy
    Inputs               a frozen dataclass: everything `run` may know about the build; its
                         `key()` is the data the step's key hashes, and must cover every field
    Outputs              a TypedDict: what `run` returns; recorded in the env's state
    inputs(resolved)     -> (summary for `plan`, Inputs), derived from the resolved build
    run(ctx, inputs, deps) -> Outputs; ctx holds no plan, so nothing else can leak in
    still_valid(layout, outputs)  cheap check that a finished result is still on disk

tests/test_step_protocol.py proves each key covers its inputs (change any field: the key changes).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from envbuilder.context import Data, Layout, StepContext
from envbuilder.resolve import Resolved


class StepInputs(Protocol):
    def key(self) -> Data: ...


class Step(Protocol):
    NAME: str
    DEPENDS: tuple[str, ...]
    VOLATILE: bool
    DISTRUST_AFTER_CUT: tuple[str, ...]
    Outputs: Any  # a TypedDict

    def inputs(self, resolved: Resolved, /) -> tuple[str, Any]: ...

    def run(self, ctx: StepContext, inputs: Any, deps: Deps, /) -> Any: ...

    def still_valid(self, layout: Layout, outputs: Any, /) -> bool: ...


class Deps(Mapping[str, Data]):
    """The outputs of the steps a step builds on, by name; asking for another step's is a bug."""

    def __init__(self, step: str, outputs: Mapping[str, Data], keys: Mapping[str, str]) -> None:
        self.step = step
        self._outputs = dict(outputs)
        self.step_keys = dict(keys)  # their keys, for the record (the manifest lists them)

    def __getitem__(self, name: str) -> Data:
        try:
            return self._outputs[name]
        except KeyError:
            raise KeyError(f"step {self.step} does not build on step {name}: add it to DEPENDS") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._outputs)

    def __len__(self) -> int:
        return len(self._outputs)


def key_of(name: str, inputs: StepInputs, depends: list[str]) -> str:
    """A step's key: its name, the hash of its inputs' key data, and the keys of its DEPENDS."""
    data = {"step": name, "inputs": inputs.key(), "depends": depends}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]
