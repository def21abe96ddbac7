"""The embedded engine gives back the library pages its start read in, runs on, and stays up
when its caller's last connection closes."""

import json
import subprocess
import sys
import textwrap

# In a process of its own: chDB starts one engine per process, and the test process has one.
PROBE = textwrap.dedent(
    """
    import json, sys, tempfile
    from pathlib import Path
    from sinks import store

    def library_mb():
        # pages of the library only this process maps (the kernel leaves shared ones be)
        kb, counting = 0, False
        for line in Path("/proc/self/smaps").read_text().splitlines():
            if "-" in line.split(" ", 1)[0]:
                counting = line.endswith("_chdb.abi3.so")
            elif counting and line.startswith("Private_Clean:"):
                kb += int(line.split()[1])
        return kb // 1024

    store.TRIM_LIBRARY = False
    path = f"{tempfile.mkdtemp()}/store"
    client = store.open_client(f"chdb://{path}")
    before = library_mb()
    store._trim_library()
    after = library_mb()
    answer = client.command("SELECT sum(number) FROM numbers(1000)")
    client.close()  # the caller's last connection (a bounded run's last sink closing)
    again = store.open_client(f"chdb://{path}")
    pool = again.command(
        "SELECT value FROM system.server_settings WHERE name = 'max_thread_pool_free_size'"
    )
    print(json.dumps({"before": before, "after": after, "answer": answer, "pool": pool}))
    """
)


def test_trimming_the_library_gives_back_most_of_its_pages_and_the_engine_runs_on():
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["answer"] == 499500
    # what the engine's start read in (~250 MB in a process alone; none when another process
    # maps every page it touched): given back, nearly all
    assert figures["after"] < 8 and figures["after"] <= figures["before"]
    # the caller's last connection closed: the engine runs on with its settings (a new one
    # would have a server's defaults: 1,000 idle threads kept)
    assert figures["pool"] == 16
