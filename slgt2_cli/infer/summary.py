"""What predict-many did: one :class:`SceneReport` per input and the :class:`ManySummary` of the run, written as
``DIR/summary.json`` and printed as a short table."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slgt2_cli.infer.settings import InferenceSettings

SUMMARY = "summary.json"
STATUSES = ("done", "skipped", "failed")


@dataclass(kw_only=True)
class SceneReport:
    """One row of summary.json."""

    stack: str
    status: str
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    pixels: int = 0
    error: str | None = None
    error_parts: tuple | None = field(default=None, repr=False)
    """An InputError's (message, path, hint, options), rendered where the summary is written."""

    def to_dict(self) -> dict[str, Any]:
        return {"stack": self.stack, "status": self.status, "outputs": self.outputs, "seconds": round(self.seconds, 3),
                "pixels": self.pixels, "error": self.error}


@dataclass(kw_only=True)
class ManySummary:
    """What predict-many did (the content of summary.json)."""

    checkpoint: Path
    out_dir: Path
    settings: InferenceSettings
    scenes: list[SceneReport]
    seconds: float
    cluster: str | None = None
    workers: int = 1
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.scenes)

    @property
    def failed(self) -> list[SceneReport]:
        return [r for r in self.scenes if r.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {"checkpoint": str(self.checkpoint), "out_dir": str(self.out_dir), "settings": self.settings.to_dict(),
                "cluster": self.cluster, "workers": self.workers, "seconds": round(self.seconds, 3),
                "interrupted": self.interrupted, "counts": {s: self.count(s) for s in STATUSES},
                "pixels": sum(r.pixels for r in self.scenes if r.status == "done"),
                "scenes": [r.to_dict() for r in self.scenes]}

    def table(self, max_failures: int = 20) -> str:
        """A short table for the terminal: counts, time, throughput, and the failures with their reasons."""
        done = [r for r in self.scenes if r.status == "done"]
        px = sum(r.pixels for r in done)
        lines = [f"{'status':<8} {'scenes':>7}", *(f"{s:<8} {self.count(s):>7,}" for s in STATUSES),
                 f"{'total':<8} {len(self.scenes):>7,}  in {self.seconds:.1f} s"
                 + (f", {px / 1e6:.2f} Mpx mapped ({px / self.seconds / 1e6:.2f} Mpx/s)" if px and self.seconds else "")]
        for r in self.failed[:max_failures]:
            named = Path(r.stack).name in (r.error or "")
            lines.append(f"failed: {r.error}" if named else f"failed: {r.stack}: {r.error}")
        if len(self.failed) > max_failures:
            lines.append(f"... and {len(self.failed) - max_failures} more failures (see {SUMMARY})")
        return "\n".join(lines)

    def written(self) -> list[tuple[Path, str]]:
        """What the run wrote, for the commands' closing ``wrote PATH  (what)`` lines."""
        done = self.count("done")
        return [(Path(self.out_dir), f"{done} map{'s' if done != 1 else ''} made, {self.count('skipped')} already there"),
                (Path(self.out_dir) / SUMMARY, "status, outputs and time per input")]
