"""The process-wide memory settings a pipeline process makes."""

import gc

from deploy.memory import limit_malloc_arenas, tune_collector


def test_tune_collector_freezes_startup_once_and_collects_less_often():
    tune_collector()
    frozen = gc.get_freeze_count()
    assert frozen > 0
    assert gc.get_threshold()[0] >= 10_000
    made_later = [[i] for i in range(1000)]  # tracked objects a second call would freeze
    tune_collector()
    assert gc.get_freeze_count() == frozen
    del made_later


def test_malloc_arena_limit_is_taken_on_glibc():
    assert limit_malloc_arenas() is True
