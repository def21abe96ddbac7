"""The cycle collector's time in a benchmark job."""

from __future__ import annotations

import gc
import time
from typing import Any


class CollectorClock:
    """The cycle collector's time while a job runs, a figure of its own: a profile charges each
    collection to whatever line happened to allocate when it began."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.runs = [0, 0, 0]  # by generation
        self._began = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":  # collections never overlap: they run under the GIL, one at once
            self._began = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._began
            self.runs[info["generation"]] += 1

    def __enter__(self) -> CollectorClock:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)

    def figures(self) -> dict[str, Any]:
        return {"collector_s": round(self.seconds, 2), "collections": self.runs}
