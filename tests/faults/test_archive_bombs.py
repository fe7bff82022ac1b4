"""Tar bombs against ``runtime.archive`` directly: what the full hostile fuzz found.

The full run of ``python -m tools.hostile_fuzz`` sends 1,100,000 empty entries; the client
refuses them by its entry cap (1,000,000), but only after 45 s and 459 MiB: the
archive is scanned whole, keeping every header. The test measures the memory a
scan of 25,000 entries allocates (about 11 MiB today); a scan that keeps nothing
but counts needs well under 4 MiB whatever the count.
"""

from __future__ import annotations

import tarfile
import tempfile
import tracemalloc

from boxlite_mcp.runtime.shared import archive

ENTRIES = 25_000
SCAN_BUDGET_MIB = 4


def many_entries(count: int) -> tempfile.SpooledTemporaryFile[bytes]:
    spool = archive.new_spool()
    for index in range(count):
        spool.write(tarfile.TarInfo(f"many/{index:08d}").tobuf(format=tarfile.USTAR_FORMAT))
    spool.write(b"\0" * 1024)
    spool.seek(0)
    return spool


def test_scanning_many_entries_takes_bounded_memory() -> None:
    spool = many_entries(ENTRIES)
    try:
        tracemalloc.start()
        try:
            archive.scan(spool)  # type: ignore[arg-type]
            peak = tracemalloc.get_traced_memory()[1] / 2**20
        finally:
            tracemalloc.stop()
        assert peak < SCAN_BUDGET_MIB, f"scanning {ENTRIES} entries allocated {peak:.0f} MiB"
    finally:
        spool.close()
