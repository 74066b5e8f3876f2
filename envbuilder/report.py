"""Everything envbuilder shows: rich tables and progress on stderr, data (text or JSON) on stdout.

Library code never prints; the CLI hands results to these functions.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from envbuilder.errors import EnvbuilderError, StepFailed
from envbuilder.plan import Plan, PlannedStep

# Piped output (CI logs, files) gets wide tables instead of rich's 80-column default.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def error(exc: EnvbuilderError) -> None:
    err.print(f"[bold red]error:[/] {escape(exc.message)}")
    if isinstance(exc, StepFailed):
        if exc.tail:
            err.print("[dim]" + escape("\n".join("  | " + line for line in exc.tail.splitlines()[-15:])) + "[/]")
        if exc.log:
            err.print(f"  full log: {escape(str(exc.log))}")
        for d in exc.diagnoses:
            err.print(f"  [yellow]diagnosis[/] ({d['id']}): {escape(d['cause'])}")
            err.print(
                f"    fix: {escape(d['fix'])}" + (f"  [dim]({escape(d['command'])})[/]" if d.get("command") else "")
            )
    if exc.hint and not (isinstance(exc, StepFailed) and exc.diagnoses):
        err.print(f"  [cyan]hint:[/] {escape(exc.hint)}")


def warn(text: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(text)}")


def plan_text(plan: Plan) -> None:
    prov = plan.provenance
    rows = [
        ("recipe", f"{plan.recipe.name}  ({plan.recipe.file})", "recipe"),
        (
            "arch",
            f"{', '.join(str(a) for a in plan.archs)}  (TORCH_CUDA_ARCH_LIST={plan.torch_cuda_arch_list})",
            prov.get("arch", ""),
        ),
        ("cuda", f"{plan.toolkit.version} at {plan.toolkit.root}", prov.get("cuda", "")),
        ("compiler", f"{plan.compiler.name} {plan.compiler.version} ({plan.compiler.path})", prov.get("compiler", "")),
        ("python", f"{plan.interpreter.version} ({plan.interpreter.path})", prov.get("python", "")),
        (
            "torch",
            f"{plan.torch.tag}: {' '.join(plan.torch.requirements())} from {plan.torch.index or 'PyPI'}",
            prov.get("torch", ""),
        ),
        ("jobs", str(plan.jobs), prov.get("jobs", "")),
        ("installer", plan.installer, prov.get("installer", "")),
        ("prefix", str(plan.prefix), prov.get("prefix", "")),
    ]
    table = Table(title=f"envbuilder plan: {plan.recipe.name}", show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_column(style="dim")
    for name, value, why in rows:
        table.add_row(name, escape(value), escape(why))
    out.print(table)
    steps = Table(show_header=True, header_style="bold", box=None)
    steps.add_column("#", justify="right")
    steps.add_column("step")
    steps.add_column("does")
    steps.add_column("key", style="dim")
    for i, step in enumerate(plan.steps, 1):
        steps.add_row(str(i), step.name, escape(step.summary), step.key)
    out.print()
    out.print(steps)
    for w in plan.warnings:
        warn(w)


def kv_table(title: str, rows: Iterable[tuple[str, str]]) -> None:
    table = Table(title=title, show_header=False, box=None, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, escape(value))
    out.print(table)


def table(title: str | None, columns: list[str], rows: Iterable[Iterable[str]]) -> None:
    t = Table(title=title, header_style="bold", box=None, title_justify="left")
    for c in columns:
        t.add_column(c)
    for row in rows:
        t.add_row(*[Text.from_markup(c) if c.startswith("[") and "[/" in c else Text(c) for c in row])
    out.print(t)


class ProgressReporter:
    """Live progress for `build`: a spinner with the step, elapsed time and the child's last
    line on a terminal; one plain line per event otherwise (CI logs)."""

    def __init__(self, console: Console = err) -> None:
        self.console = console
        self.live = console.is_terminal
        self.status: Any = None
        self.step: PlannedStep | None = None
        self.label = ""
        self.started = 0.0
        self.last_line = ""

    def _update(self) -> None:
        if self.status is not None:
            elapsed = time.monotonic() - self.started
            line = self.last_line[-90:]
            self.status.update(f"{self.label} [dim]{elapsed:5.0f} s  {escape(line)}[/]")

    def step_start(self, step: PlannedStep, index: int, total: int) -> None:
        self.step, self.started, self.last_line = step, time.monotonic(), ""
        self.label = f"[{index}/{total}] [bold]{step.name}[/] {escape(step.summary)}"
        if self.live:
            self.status = self.console.status(self.label)
            self.status.start()
        else:
            self.console.print(f"[{index}/{total}] {step.name}: {escape(step.summary)}")

    def step_skip(self, step: PlannedStep, index: int, total: int) -> None:
        self.console.print(f"[{index}/{total}] [green]•[/] {step.name} [dim]up to date[/]")

    def step_line(self, line: str) -> None:
        if line.strip():
            self.last_line = line.strip()
            self._update()

    def step_note(self, text: str) -> None:
        if self.live and self.status is not None:
            self.console.print(f"      [dim]{escape(text)}[/]")
        else:
            self.console.print(f"      {escape(text)}")

    def _stop(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None

    def step_done(self, step: PlannedStep, seconds: float) -> None:
        self._stop()
        self.console.print(f"      [green]✓[/] {step.name} [dim]{seconds:.1f} s[/]")

    def step_failed(self, step: PlannedStep, error: EnvbuilderError, seconds: float) -> None:
        self._stop()
        self.console.print(f"      [red]✗[/] {step.name} [dim]failed after {seconds:.1f} s[/]")
