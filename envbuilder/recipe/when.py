"""`when:` conditions: a mapping of variable -> PEP 440 specifier, all of which must hold.

    when: {cuda: ">=12.5", gcc: ">=13"}

Variables: cuda (toolkit version), torch, python, gcc (host compiler), arch (true when any
requested arch matches, e.g. arch: ">=12.0"). A fact that is not known yet (torch before it is
installed) makes the condition undecided (None) rather than false.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

VARIABLES = ("cuda", "torch", "python", "gcc", "arch")

Facts = Mapping[str, "Version | list[Version] | None"]


@dataclass(frozen=True)
class Condition:
    clauses: tuple[tuple[str, SpecifierSet], ...]

    def __str__(self) -> str:
        return ", ".join(f"{var} {spec}" for var, spec in self.clauses)

    def variables(self) -> set[str]:
        return {var for var, _ in self.clauses}

    def evaluate(self, facts: Facts) -> bool | None:
        """True/False when every fact needed is known; None when one is still unknown."""
        undecided = False
        for var, spec in self.clauses:
            value = facts.get(var)
            if value is None:
                undecided = True
                continue
            values = value if isinstance(value, list) else [value]
            if not any(spec.contains(v, prereleases=True) for v in values):
                return False
        return None if undecided else True


def parse_specifier(text: str) -> SpecifierSet:
    """A specifier; a bare version such as "12.8" means ==12.8.* (that release series)."""
    text = text.strip()
    if text and text[0].isdigit():
        Version(text)  # raises InvalidVersion for nonsense
        text = f"=={text}.*" if "*" not in text else f"=={text}"
    return SpecifierSet(text)


def parse_condition(raw: Mapping[str, str]) -> Condition:
    """Build a Condition; raises ValueError with a readable message on bad input."""
    clauses = []
    for var, text in raw.items():
        if var not in VARIABLES:
            raise ValueError(f"unknown variable {var!r}; known: {', '.join(VARIABLES)}")
        if not isinstance(text, str):
            raise ValueError(
                f"{var}: expected a quoted version specifier such as '>=12.8', got {type(text).__name__}"
                " (YAML reads an unquoted 3.10 as the number 3.1)"
            )
        try:
            clauses.append((var, parse_specifier(text)))
        except (InvalidSpecifier, InvalidVersion):
            raise ValueError(f"{var}: {text!r} is not a version specifier (e.g. '>=12.8' or '<2.13')") from None
    return Condition(tuple(clauses))


def facts(
    *,
    cuda: Version | None,
    python: Version | None,
    gcc: Version | None,
    torch: Version | None,
    archs: list[Version] | None,
) -> dict[str, Version | list[Version] | None]:
    """The facts conditions are evaluated against, built the same way by the plan, the patches
    step and `envbuilder patch` (None: not known yet, which leaves a condition undecided)."""
    return {"cuda": cuda, "python": python, "gcc": gcc, "arch": archs, "torch": torch}
