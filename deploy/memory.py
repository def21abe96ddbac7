"""Process-wide memory settings for whatever runs pipelines (the runtime, a replay, a bench job).

- glibc gives every thread that allocates its own malloc arena (up to 8 per core), and the
  runtime has many threads (Bytewax, kafka-python's IO thread per consumer, the API server). Two
  arenas cost nothing measurable in throughput and about 70 MB of resident memory less on a
  backlog catch-up (`make bench`, scenario 5).
- CPython's cycle collector, at its defaults, ran a full collection every ~7,000 commands; each
  walked every live object (~100k, scattered over 500 MB, so bound by memory latency: 50-110 ms)
  and together they took a third of the pipeline's CPU. Pipelines allocate a lot but make almost
  no cycles (per-record structs are `gc=False`, state is in untracked containers, each sink
  reuses one insert context), so the objects startup made (modules, settings, the dataflow) are
  frozen out of every collection, and the young generation is collected every 200,000
  allocations instead of 700: more than the ~25,000 tracked objects a batch keeps alive while it
  runs. At 10,000, every young collection moved a live batch to the older generations, and the
  full collections that followed took 2-3 s of every million commands (BENCHMARKS.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

_M_ARENA_MAX = -8
_YOUNG_THRESHOLD = 200_000


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """True if glibc took the limit (elsewhere this does nothing)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(_M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False


def release_memory() -> bool:
    """After a deployment is gone: collect the cycles it left (the collector runs rarely, see
    above) and hand the heap's free pages back to the system (glibc keeps them otherwise, and
    a runtime's RSS would stay at the peak of its biggest catch-up). True if glibc did."""
    gc.collect()
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        return bool(ctypes.CDLL(name).malloc_trim(0))
    except (OSError, AttributeError):
        return False


def tune_collector() -> None:
    """Collect what garbage there is, freeze the survivors, and collect less often; only the
    first call does anything, so objects a later call would freeze can still be collected."""
    if gc.get_threshold()[0] >= _YOUNG_THRESHOLD:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(_YOUNG_THRESHOLD, 10, 10)
