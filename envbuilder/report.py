"""Everything envbuilder shows: rich tables and progress on stderr, data (text or JSON) on stdout.

Library code never prints; the CLI hands results to these functions.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from envbuilder.errors import EnvbuilderError, StepFailed
from envbuilder.execute import Reporter
from envbuilder.plan import Plan, PlannedStep

if TYPE_CHECKING:
    from envbuilder.assets import AssetStatus, Installed
    from envbuilder.fatbin import BinaryReport
    from envbuilder.host import HostFacts
    from envbuilder.host.compat import Arch

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
            err.print(f"  [yellow]diagnosis[/] ({d['id']}): {escape(str(d['cause']))}")
            command = f"  [dim]({escape(str(d['command']))})[/]" if d.get("command") else ""
            err.print(f"    fix: {escape(str(d['fix']))}" + command)
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


class ProgressReporter(Reporter):
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


# --- what each command shows ---------------------------------------------------------------


def recipes_list(rows: list[dict[str, Any]]) -> None:
    table(
        None,
        ["recipe", "status", "origin", "summary"],
        [
            [r["name"], r["status"], r["origin"], r["summary"] or f"[red]invalid: {escape(str(r['error']))}[/]"]
            for r in rows
        ],
    )


def recipe_show(data: dict[str, Any]) -> None:
    src = data["source"]
    rows = [
        ("recipe", f"{data['name']}: {data['summary']}"),
        ("file", data["file"]),
        ("license", data["license"] or "-"),
        ("source", f"{src['git']} @ {src['commit']}" if "git" in src else str(src["path"])),
        ("python", data["python"]),
    ]
    rows += [(f"torch {v['tag']}", " ".join(v["requirements"]) + f"  ({v['index'] or 'PyPI'})") for v in data["torch"]]
    rows += [
        ("requires", r["req"] + (f"  when {r['when']}" if r["when"] else "") + (f"  # {r['why']}" if r["why"] else ""))
        for r in data["requirements"]
    ]
    for e in data["extensions"]:
        own = e["source"]
        where = f"from {own['git']} @ {own['commit'][:12]}" if own else f"at {e['path']}"
        fixes = f" (patches: {', '.join(e['patches'])})" if e["patches"] else ""
        rows.append(("extension", f"{e['name']} {where}, import {e['import']}{fixes}"))
    for p in data["patches"]:
        rows.append(("patch", f"{p['name']} on {', '.join(p['files'])}" + (f" when {p['when']}" if p["when"] else "")))
    for a in data["assets"]:
        rows.append(
            ("asset", f"{a['name']}: {a['path']} ({'gated: ' + (a['register'] or '') if a['gated'] else 'free'})")
        )
    for st in data["smoke"]:
        rows.append(("smoke", f"{st['name']}: {' '.join(st['run'])}"))
    if data["notes"]:
        rows.append(("notes", data["notes"]))
    kv_table(f"envbuilder show {data['name']}", rows)


def build_done(prefix: str, manifest: str, smoke: dict[str, Any]) -> None:
    out.print(f"[green]ready:[/] {escape(prefix)}  (activate: source {escape(prefix)}/venv/bin/activate)")
    out.print(f"manifest: {escape(manifest)}")
    if smoke.get("steps"):
        smoke_run(smoke)
    elif smoke.get("skipped"):
        out.print(f"smoke run: skipped ({escape(smoke['skipped'])})")


def build_blocked(
    recipe: str, root: Path, statuses: list[AssetStatus], blocked: dict[str, list[str]], code: int
) -> None:
    assets_status(recipe, root, statuses, blocked)
    out.print(f"the env is built; the smoke run is blocked on assets (exit {code}): see `envbuilder assets {recipe}`")


def smoke_run(data: dict[str, Any]) -> None:
    colour = {"ok": "green", "failed": "red", "blocked": "yellow", "skipped": "yellow"}
    rows = []
    for step in data["steps"]:
        shown = {k: v for k, v in step["metrics"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in shown.items())
        detail = step["detail"] or ""
        if step["blocked_by"]:
            detail = "needs " + ", ".join(step["blocked_by"])
        status = f"[{colour.get(step['status'], 'red')}]{step['status']}[/]"
        rows.append([step["name"], status, f"{step['seconds']:.0f} s", metrics, detail])
    stubs = " [yellow](stub-driven: stand-ins for " + ", ".join(data["stubs"]) + ")[/]" if data["stub_driven"] else ""
    table(f"smoke run of {data['recipe']}" + stubs, ["step", "status", "time", "metrics", "detail"], rows)


def assets_status(recipe: str, root: Path, statuses: list[AssetStatus], blocked: dict[str, list[str]]) -> None:
    if not statuses:
        out.print(f"{recipe} needs no assets")
        return
    colour = {"ok": "green", "missing": "yellow"}
    rows = []
    for s in statuses:
        a = s.asset
        status = f"[{colour.get(s.status, 'red')}]{s.status}[/]" + (" [yellow](stand-in)[/]" if s.stub else "")
        where = a.register if a.gated else (a.url or a.source)
        rows.append([a.name, status, str(s.path), ("gated: " if a.gated else "free: ") + (where or "-"), s.detail])
    table(f"assets of {recipe} (root {root})", ["asset", "status", "destination", "get it", "detail"], rows)
    for step, names in blocked.items():
        out.print(f"[yellow]blocked:[/] smoke step '{step}' needs {', '.join(names)}")
    if not root.is_dir():
        out.print(f"(no source tree at {root} yet: build first, or pass --root DIR)")


def assets_installed(done: list[Installed], warnings: list[str]) -> None:
    for w in warnings:
        warn(w)
    for d in done:
        out.print(
            f"[green]installed[/] {d.asset.name}: {escape(str(d.source))} -> {escape(str(d.path))} ({escape(d.detail)})"
        )


def assets_fetched(results: list[dict[str, Any]]) -> None:
    for r in results:
        out.print(f"{r['name']}: {escape(str(r['result']))}")


def assets_stubbed(written: list[str], skipped: list[str]) -> None:
    for name in written:
        out.print(f"[yellow]stand-in[/] {name} written (random values: anything run on it is a stub run)")
    for line in skipped:
        out.print(f"skipped {escape(line)}")


def patch_results(recipe: str, source: Path, mode: str, results: list[dict[str, Any]], diff_text: str) -> None:
    if mode == "revert":
        for r in results:
            restored = r["reverted"]
            out.print(f"{r['root']}: " + (f"restored {', '.join(restored)}" if restored else "nothing to revert"))
        return
    verb = {"apply": "would apply" if mode == "check" else "applied", "applied": "applied"}
    table(
        f"patches of {recipe} in {source}",
        ["root", "patch", "status", "files", "note"],
        [
            [
                r["root"],
                r["patch"],
                verb.get(r["status"], r["status"]),
                " ".join(f["path"] for f in r["files"]) or "-",
                r["reason"],
            ]
            for r in results
        ],
    )
    if diff_text:
        sys.stdout.write(diff_text)


def scan_results(root: Path, hits: list[Any], proposals: dict[str, list[str]]) -> None:
    if not hits:
        out.print(f"{root}: no cstdint, cfloat or C++-standard problems found")
        return
    table(
        f"problems in {root}",
        ["kind", "file:line", "code"],
        [[h.kind, f"{h.file}:{h.line}", h.text[:90]] for h in hits],
    )
    out.print("\nproposed patches (for the recipe's or extension's patches: list):")
    for name, files in proposals.items():
        out.print(f"  - {{use: {name}, files: [{', '.join(files)}]}}", markup=False)


def toolkits(found: list[dict[str, Any]]) -> None:
    rows = [
        [
            t["version"],
            t["root"],
            t["found_by"],
            " ".join(f"sm_{c}" for c in t["sm_codes"]),
            "; ".join(t["problems"]) or "-",
        ]
        for t in found
    ]
    none = [["-", "-", "-", "-", "no CUDA toolkit found: install one, or `envbuilder toolkit install 13.0`"]]
    table("CUDA toolkits", ["version", "CUDA_HOME", "found by", "archs", "problems"], rows or none)


def matrix(rows: list[dict[str, Any]]) -> None:
    table(
        None,
        ["recipe", "cuda", "torch", "python", "arch", "toolkit"],
        [
            [r["recipe"], r["cuda"], r["torch"], r["python"], r["arch"], r["image"] or "envbuilder toolkit install"]
            for r in rows
        ],
    )


def inspected(reports: list[BinaryReport], data: list[dict[str, Any]]) -> None:
    runs = {"sass": "[green]yes (SASS)[/]", "ptx": "[yellow]via PTX JIT[/]"}
    for r, d in zip(reports, data, strict=True):
        out.print(
            f"[bold]{escape(str(r.path))}[/]: SASS {' '.join(r.sass) or '-'}  PTX {' '.join(r.ptx) or '-'}"
            + ("" if r.has_device_code else "  (no device code)")
        )
        table(
            None,
            ["kind", "arch", "compression", "bytes", "section"],
            [[e.kind, e.arch, e.compression or "-", str(e.size), e.section] for e in r.entries],
        )
        for arch, how in d.get("runs_on", {}).items():
            out.print(f"  runs on {arch}: " + runs.get(how or "", "[red]no[/]"))


def doctor(
    host: HostFacts,
    archs: tuple[Arch, ...],
    verdicts: list[dict[str, Any]],
    canary: dict[str, Any] | None,
    can_build: bool,
) -> None:
    gpus = "; ".join(f"{g.name} (cc {g.compute_capability}, driver {g.driver})" for g in host.gpus)
    kv_table(
        "host",
        [
            ("machine", f"{host.machine}, glibc {host.glibc or '?'}"),
            ("cpu / memory", f"{host.cpu_count} cores, {host.memory_gib:.0f} GiB"),
            ("gpus", gpus or (host.gpu_note or "none")),
            ("compilers", ", ".join(f"{c.name} {c.version}" for c in host.compilers) or "none"),
            ("pythons", ", ".join(sorted({str(i.version) for i in host.interpreters})) or "none"),
            ("tools", ", ".join(f"{k}" for k in host.tools) or "none"),
        ],
    )
    none = [["-", "-", "-", "[red]no[/]", "no CUDA toolkit found (install CUDA >= 12.8 or set CUDA_HOME)"]]
    table(
        f"CUDA toolkits for {', '.join(str(a) for a in archs)}",
        ["version", "root", "found by", "can build", "why not"],
        [
            [
                v["toolkit"]["version"],
                v["toolkit"]["root"],
                v["toolkit"]["found_by"],
                "[green]yes[/]" if v["ok"] else "[red]no[/]",
                "; ".join(v["problems"]),
            ]
            for v in verdicts
        ]
        or none,
    )
    if canary:
        _canary(canary)
    verdict = "[green]can build" if can_build else "[red]cannot build"
    out.print(f"[bold]{verdict}[/] for {', '.join(str(a) for a in archs)} on this host")


def _canary(canary: dict[str, Any]) -> None:
    if canary.get("skipped"):
        out.print(f"canary: skipped ({canary['skipped']})")
        return
    if canary.get("error"):
        out.print(f"canary: [red]compile failed[/]: {escape(str(canary['error']))}")
        return
    out.print(
        f"canary: compiled in {canary['compile_seconds']} s with CUDA {canary['nvcc']}: SASS {' '.join(canary['sass'])}; PTX {' '.join(canary['ptx']) or '-'}"
    )
    run = canary["run"]
    if run.get("skipped"):
        out.print(f"canary run: skipped ({run['skipped']})")
    else:
        out.print(f"canary run: {'[green]ok[/]' if run.get('ok') else '[red]failed[/]'} {escape(str(run))}")


def diagnoses(
    findings: list[Any], console: Console | None = None, *, limit: int | None = None, quiet_if_none: bool = False
) -> None:
    """Render diagnose findings (envbuilder.diagnose.scan): root causes first, each with its line,
    cause, fix and the envbuilder command that does the fix; consequences say what they follow.

    Where a step, a smoke run, a verify import or `envbuilder run` fails, call
    report.diagnoses(diagnose.scan(text), console=report.err, limit=3, quiet_if_none=True)."""
    console = console or out
    if not findings:
        if not quiet_if_none:
            console.print("no known error signature found")
        return
    shown = findings if limit is None else findings[:limit]
    for f in shown:
        after = f"  [dim](follows from {', '.join(f.follows)})[/]" if f.follows else ""
        console.print(
            f"[bold]{f.signature.id}[/] (line {f.line_number}): [dim]{escape(f.line.strip()[:160])}[/]{after}"
        )
        command = f"\n  run:   {f.signature.command}" if f.signature.command else ""
        console.print(f"  cause: {escape(f.cause)}\n  fix:   {escape(f.fix)}" + escape(command))
    if len(shown) < len(findings):
        console.print(f"[dim]  ... and {len(findings) - len(shown)} more (envbuilder diagnose LOGFILE)[/]")


# --- locks (envbuilder/lock/) -------------------------------------------------------------------


def lock_note(text: str) -> None:
    """Progress of `envbuilder lock` (resolving, downloading), dim on stderr."""
    err.print(f"[dim]{escape(text)}[/]")


def lock_written(path: str, lock: Any, changes: list[str], *, site_config: bool) -> None:
    """`envbuilder lock`: the packages, what moved since the previous lock, and where it went."""
    rows = [
        [p.name, p.version, p.artifact.kind, f"{p.artifact.size / 1e6:.1f} MB", p.artifact.sha256[:12], p.index or "-"]
        for p in lock.packages
    ]
    table(None, ["package", "version", "file", "size", "sha256", "index"], rows)
    for line in changes:
        out.print(f"  {escape(line)}")
    total = sum(p.artifact.size for p in lock.packages) / 1e9
    out.print(f"wrote [bold]{escape(path)}[/]: {len(lock.packages)} packages, {total:.2f} GB, every file hashed")
    if site_config:
        warn("this lock names this machine's pip indexes (pip config); commit only locks made with --no-pip-config")


def lock_check(path: str, changes: list[str]) -> None:
    """`envbuilder lock --check`: one line per change; nothing when the lock still holds."""
    for line in changes:
        out.print(escape(line))
    if changes:
        err.print(f"[red]{escape(path)} is out of date[/]: {len(changes)} change(s)")
    else:
        err.print(f"[green]{escape(path)} is up to date[/]")


# --- envbuilder cache ---------------------------------------------------------------------


def _mib(n: float) -> str:
    return f"{n / 1024**2:.1f} MiB"


def cache_entries(entries: list[dict[str, Any]]) -> None:
    if not entries:
        out.print("the extension cache is empty")
        return
    rows = [
        [
            e["key"][:12],
            e["extension"],
            e["archs"],
            _mib(e["size"]),
            time.strftime("%Y-%m-%d %H:%M", time.localtime(e["last_use"])),
            ", ".join(e["recipes"]) or "-",
            str(e.get("origin") or "-"),
        ]
        for e in entries
    ]
    columns = ["key", "extension", "archs", "size", "last use", "recipes", "origin"]
    table("envbuilder cache list (least recently used first)", columns, rows)
    out.print(f"{len(entries)} entries, {_mib(sum(e['size'] for e in entries))}")


def cache_gc(removed: list[dict[str, Any]], kept: int, limit: int) -> None:
    for e in removed:
        out.print(f"removed {e['key'][:12]} {escape(e['extension'])} ({_mib(e['size'])})")
    out.print(f"{len(removed)} removed; the cache holds {_mib(kept)} (max {_mib(limit)})")
    if kept > limit:
        warn("entries in use by a running build were kept; run gc again when it is done")


def cache_transfers(title: str, rows: list[dict[str, Any]]) -> None:
    good = ("pushed", "replaced", "pulled", "already published", "already cached")
    table(
        title,
        ["key", "extension", "archs", "status", "note"],
        [
            [
                r["key"][:12],
                r["extension"],
                r["archs"],
                f"[{'green' if r['status'] in good else 'red'}]{r['status']}[/]",
                r.get("note") or "",
            ]
            for r in rows
        ],
    )


def signature_catalogue(cat: Any) -> None:
    """`envbuilder diagnose --list`: the known failures, in the order a user meets them."""
    for category in cat.categories:
        sigs = [s for s in cat.signatures if s.category == category and s.patterns]
        if not sigs:
            continue
        grid = Table(title=f"{category} ({len(sigs)})", title_justify="left", show_lines=False)
        for column in ("id", "cause", "fix", "source"):
            grid.add_column(column, overflow="fold")
        for s in sigs:
            fix = s.fix + (f" [{s.command}]" if s.command else "")
            cascade = " (a consequence)" if s.is_cascade else ""
            grid.add_row(s.id + cascade, escape(s.cause), escape(fix), escape(", ".join(s.source)))
        out.print(grid)
    total = sum(1 for s in cat.signatures if s.patterns)
    out.print(f"{total} signatures in {cat.file}")


def bundle_made(made: Any, parts: Path | None) -> None:
    out.print(f"[green]bundle[/] {escape(str(made.root))}: {made.files} files, {_size(made.size)}")
    for name, size in made.largest:
        out.print(f"  {_size(size):>9}  {escape(name)}")
    if made.without:
        out.print(
            f"  left out for the base: {escape(', '.join(made.without[:6]))}" + (" …" if len(made.without) > 6 else "")
        )
    for name, state in made.extensions.items():
        out.print(f"  extension {name}: {escape(state)}")
    if parts is not None:
        out.print(f"  parts: {escape(str(parts))} (join with `envbuilder bundle join {escape(str(parts))}`)")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def new_result(result: Any) -> None:
    """What `envbuilder new` wrote and what it could not decide (result: envbuilder.new.command.Result)."""
    d = result.draft
    out.print(
        f"[green]wrote[/] {escape(str(result.recipe_file))}"
        + (f" and {len(result.files) - 1} extension file(s)" if len(result.files) > 1 else "")
        + f" in {result.seconds:.1f} s"
    )
    source = d.source.get("git") or d.source.get("path")
    commit = f" @ {d.source['commit']}" if d.source.get("commit") else ""
    out.print(f"  source: {escape(str(source))}{commit}; python {d.python}; torch table: {', '.join(d.torch_packages)}")
    if d.extensions:
        table(
            "extensions",
            ["extension", "kind", "where", "found"],
            [
                [
                    e.name + ("" if e.enabled else " (commented out)"),
                    "shared" if e.shared else "new",
                    e.path or (e.source or {}).get("git", "its own repository"),
                    e.why[:110],
                ]
                for e in d.extensions
            ],
        )
    else:
        out.print("  no CUDA/C++ extension found: plain Python plus torch")
    for p in d.patches:
        out.print(
            f"  patch {p.name}: {', '.join(p.files) if p.files else '(its own files)'}  [dim]{escape(p.why[:100])}[/]"
        )
    changed = [r for r in d.requirements if r.why]
    out.print(
        f"  requirements: {len(d.requirements)} ({len(changed)} with a reason), {len(d.dropped)} not carried over"
    )
    for a in d.assets:
        out.print(f"  gated asset {a.name}: {escape(a.path)} (register at {escape(a.register)})")
    if d.todos:
        out.print(f"\n[yellow]TODO[/] ({len(d.todos)}, also at the end of the recipe):")
        for i, t in enumerate(d.todos, 1):
            out.print(f"  {i}. {escape(t)}")
    out.print(f"\nnext: envbuilder plan {d.name} --recipes {escape(str(result.output))} --arch 12.0")


def new_trial(trial: Any) -> None:
    """Per extension: compiled, SASS present, imports, or the failure (trial: envbuilder.new.trial.Trial)."""
    if trial.failed_step:
        out.print(f"[red]the trial stopped at step {trial.failed_step}:[/] {escape(trial.error or '')}")
        for f in trial.findings:
            out.print(f"  [yellow]diagnosis[/] ({f['id']}): {escape(f['cause'])} fix: {escape(f['fix'])}")
        if trial.hint and not trial.findings:
            out.print(f"  [cyan]hint:[/] {escape(trial.hint)}")
        if trial.log:
            out.print(f"  log: {escape(trial.log)}")
        return

    def sass(e: Any) -> str:
        return ", ".join(f"{arch} {how or 'missing'}" for arch, how in e.sass.items()) or "-"

    def imports(e: Any) -> str:
        return "-" if e.imports is None else ("yes" if e.imports else "no")

    table(
        f"trial for {', '.join(trial.archs)} in {trial.prefix}",
        ["extension", "compiled", "SASS", "imports", "problem"],
        [
            [
                e.name,
                ("yes" + (" (cached)" if e.cache == "hit" else "")) if e.compiled else "no",
                sass(e),
                imports(e),
                (e.error or "").splitlines()[0][:100] if e.error else "-",
            ]
            for e in trial.extensions
        ],
    )
    for e in trial.extensions:
        for f in e.findings:
            out.print(f"  {e.name}: [yellow]{f['id']}[/]: {escape(f['cause'])} fix: {escape(f['fix'])}")
        if e.patches:
            out.print(
                f"  {e.name}: envbuilder's patch for it: {', '.join(e.patches)} (add it to the extension's patches:)"
            )
        if e.error and e.log:
            out.print(f"  {e.name}: log {escape(e.log)}")
    out.print(
        "[green]every extension built, holds SASS and imports[/]" if trial.ok else "[red]not every extension made it[/]"
    )
