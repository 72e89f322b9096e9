"""Progress on the terminal while scenarios run: scenario, step, elapsed; then the summary table.

On a terminal (stderr is a TTY) a rich status line is updated in place; otherwise (CI, pipes)
one plain line per step is printed to stderr. ``quiet`` prints nothing but the summary.
"""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, quiet: bool = False, stream=None):
        self.total = total
        self.done = 0
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._t0 = time.monotonic()
        self._run_t0 = self._t0
        self._status = None
        if self.tty and not quiet:
            from rich.console import Console
            self.console = Console(file=self.stream)
        else:
            self.console = None

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self._run_t0:6.1f}s"

    def scenario_start(self, run: str) -> None:
        self._run_t0 = time.monotonic()
        self._line(f"[{self.done + 1}/{self.total}] {run}: starting the engine")

    def step(self, run: str, label: str) -> None:
        if self.console and len(label) > 110:  # the status line is one terminal row; plain lines
            label = label[:109] + "…"             # (CI logs, read later) are never cut
        self._line(f"[{self.done + 1}/{self.total}] {run} {self._elapsed()}  {label}")

    def scenario_end(self, entry: dict) -> None:
        self.done += 1
        self._stop_status()
        if not self.quiet:
            mark = {"pass": "PASS", "fail": "FAIL", "n/a": "N/A", "error": "ERROR"}.get(entry["status"],
                                                                                   entry["status"].upper())
            line = f"{mark:5} {entry['run']} ({entry.get('duration', 0):.1f}s)" + (
                f": {entry['reason']}" if entry.get("reason") else "")
            if self.console:
                color = {"PASS": "green", "FAIL": "red", "ERROR": "red"}.get(mark, "yellow")
                self.console.print(f"[{color}]{mark:5}[/{color}] {line[6:]}", highlight=False, markup=True)
            else:
                self.stream.write(line + "\n")
                self.stream.flush()

    def _line(self, text: str) -> None:
        if self.quiet:
            return
        if self.console:
            from rich.markup import escape
            if self._status is None:
                self._status = self.console.status(escape(text))
                self._status.start()
            else:
                self._status.update(escape(text))
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def _stop_status(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def close(self) -> None:
        self._stop_status()
