import gc

from bench.collector import CollectorClock


def test_the_clock_counts_each_collection_by_generation_while_it_runs() -> None:
    with CollectorClock() as clock:
        gc.collect(0)
        gc.collect()
    gc.collect()  # after the block: not counted
    young, _, full = clock.figures()["collections"]
    assert young >= 1 and full >= 1
    assert clock.figures()["collector_s"] >= 0 and clock.seconds > 0
    assert clock not in gc.callbacks
