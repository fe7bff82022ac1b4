"""The pre-made spare disk (``disk.Spare``): what a new box takes is a fresh,
mounted, empty layer of the size asked for."""

from __future__ import annotations

import os
from pathlib import Path

from boxlite_mcp.runtime.bwrap import disk


def test_spare_is_a_fresh_empty_layer(tmp_path: Path) -> None:
    spare = disk.Spare(tmp_path / "spare", tmp_path / "templates", 1)
    spare.start()
    try:
        fd = spare.take(1, tmp_path / "disk.img")
        assert fd is not None, "the spare was not made (see the warning logged)"
        try:
            layer = disk.layer_path(fd)
            assert sorted(os.listdir(layer)) == ["lost+found", "upper", "work"]
            assert os.listdir(layer / "upper") == []
            assert os.listdir(layer / "work") == []
            assert (tmp_path / "disk.img").is_file()
            assert os.fstatvfs(fd).f_blocks * os.fstatvfs(fd).f_frsize <= disk.GIB
        finally:
            os.close(fd)
    finally:
        spare.close()


def test_spare_of_another_size_is_not_taken(tmp_path: Path) -> None:
    spare = disk.Spare(tmp_path / "spare", tmp_path / "templates", 1)
    try:
        assert spare.take(2, tmp_path / "disk.img") is None
        assert not (tmp_path / "disk.img").exists()
    finally:
        spare.close()
