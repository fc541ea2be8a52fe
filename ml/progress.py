"""Progress of the long steps (training, scoring, ingesting, generating): a bar in a terminal,
plain log lines everywhere else (Airflow task logs, pipes, files).

One class for all of them, so every long command reports the same way: done/total, figures
the caller adds (loss, samples/s, records), ETA, and notes (an epoch's validation metrics).
Only counts and metrics go in: never customer text.

INTENTFLOW_PROGRESS picks the display: auto (default: a bar when stderr is a terminal, else
log lines), bar, log or off.
"""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType
from typing import Any

from ml.config import progress_mode

# One logger for every progress line, so the CLI can show them without --verbose.
logger = logging.getLogger("ml.progress")

MODES = ("auto", "bar", "log", "off")
# Log mode writes a line about every this share of the total when the caller sets no `every`,
# and no more often than every LOG_SECONDS: a step that takes a second logs only its end.
LOG_SHARE = 0.05
LOG_SECONDS = 10.0


def display_mode(mode: str | None = None) -> str:
    """bar, log or off: `mode`, else INTENTFLOW_PROGRESS; auto means a bar on a terminal."""
    chosen = (mode or progress_mode()).strip().lower()
    if chosen not in MODES:
        raise ValueError(f"INTENTFLOW_PROGRESS must be one of {', '.join(MODES)}, got {chosen!r}")
    if chosen == "auto":
        return "bar" if sys.stderr.isatty() else "log"
    return chosen


class Progress:
    """`done` out of `total` `unit`s of the step called `what`.

    advance(n, **figures) after each piece of work; note(text) for a line of its own (above
    the bar, or a log line). In log mode a line is written each time `done` passes a multiple
    of `every` (default: about 5% of the total, at most one line every LOG_SECONDS) and at
    the end. Use as a context manager (the bar is closed).
    """

    def __init__(
        self,
        what: str,
        total: float | None,
        unit: str = "it",
        every: float | None = None,
        start: float = 0,
        mode: str | None = None,
    ) -> None:
        self.what, self.total, self.unit = what, total, unit
        self.done = self._logged = self._started_at = start
        self.mode = display_mode(mode)
        self.every = every or (max(total * LOG_SHARE, 1) if total else 1)
        self._gap = 0.0 if every else LOG_SECONDS
        self.figures: dict[str, Any] = {}
        self._clock = self._line_at = time.monotonic()
        self._bar: Any = None
        if self.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                initial=start,
                desc=what,
                unit=unit,
                file=sys.stderr,
                dynamic_ncols=True,
                mininterval=0.5,
            )

    def advance(self, n: float = 1, **figures: Any) -> None:
        """`n` more units done; `figures` (numbers) are shown beside the count."""
        self.done += n
        self.figures.update(figures)
        if self._bar is not None:
            if figures:
                self._bar.set_postfix(_figures(self.figures), refresh=False)
            self._bar.update(n)
        elif self.mode == "log" and (
            self.done == self.total
            or self.done // self.every > self._logged // self.every
            and time.monotonic() - self._line_at >= self._gap
        ):
            self._log_line()

    def note(self, message: str, *args: Any) -> None:
        """A line of its own (an epoch's metrics): above the bar, else a log line."""
        if self._bar is not None:
            self._bar.write(message % args if args else message, file=sys.stderr)
        elif self.mode == "log":
            logger.info(message, *args)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "log" and self.done != self._logged:
            self._log_line()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _log_line(self) -> None:
        self._logged, self._line_at = self.done, time.monotonic()
        parts = [f"{self.what}: {_count(self.done)}"]
        if self.total:
            parts[0] += f"/{_count(self.total)} {self.unit} ({100 * self.done / self.total:.0f}%)"
        else:
            parts[0] += f" {self.unit}"
        parts += [f"{k} {v}" for k, v in _figures(self.figures).items()]
        eta = self.eta()
        if eta is not None:
            minutes, seconds = divmod(round(eta), 60)
            parts.append(f"ETA {minutes // 60}:{minutes % 60:02d}:{seconds:02d}")
        logger.info(", ".join(parts))

    def eta(self) -> float | None:
        """Seconds left at the pace of this process so far (None without a total or a pace)."""
        ran = self.done - self._started_at
        if not self.total or ran <= 0:
            return None
        return max(self.total - self.done, 0) * (time.monotonic() - self._clock) / ran


def _count(n: float) -> str:
    return f"{n:.1f}" if isinstance(n, float) and not n.is_integer() else f"{int(n)}"


def _figures(figures: dict[str, Any]) -> dict[str, str]:
    """Figures as short strings: 4 decimals below 10 (losses, scores), else 1 (rates)."""
    return {
        k: (f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}") if isinstance(v, float) else str(v)
        for k, v in figures.items()
    }
