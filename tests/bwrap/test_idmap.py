"""The id-shift rule (``idmap``) on its own: box id N is host id 100000 + N for
N in 0-65535, and every host id outside that range is ``nobody`` in the box."""

from __future__ import annotations

import tarfile

import pytest

from boxlite_mcp.runtime.bwrap import idmap


def test_the_user_namespace_map_is_box_0_to_host_100000_for_65536_ids() -> None:
    assert idmap.ID_MAP == "0 100000 65536\n"
    assert (idmap.HOST_BASE, idmap.SIZE, idmap.OVERFLOW) == (100000, 65536, 65534)


@pytest.mark.parametrize(("box", "host"), [(0, 100000), (1, 100001), (65535, 165535)])
def test_to_host_shifts_box_ids(box: int, host: int) -> None:
    assert idmap.to_host(box) == host


@pytest.mark.parametrize(
    ("host", "box"),
    [(100000, 0), (100001, 1), (165535, 65535), (165534, 65534), (123456, 23456)],
)
def test_to_box_shifts_mapped_host_ids_back(host: int, box: int) -> None:
    assert idmap.to_box(host) == box


@pytest.mark.parametrize("host", [0, 1000, 99999, 165536, 165537, 2**32 - 1])
def test_to_box_shows_unmapped_host_ids_as_nobody(host: int) -> None:
    """Host root (0) and ordinary host users are never box root or a box user."""
    assert idmap.to_box(host) == idmap.OVERFLOW


def test_to_box_undoes_to_host_over_the_whole_range() -> None:
    assert all(idmap.to_box(idmap.to_host(n)) == n for n in range(idmap.SIZE))


def test_tarinfo_to_box_shifts_owners_and_drops_host_names() -> None:
    info = tarfile.TarInfo("f")
    info.uid, info.gid = 100000 + 1000, 100000 + 50
    info.uname, info.gname = "hostuser", "hostgroup"
    out = idmap.tarinfo_to_box(info)
    assert (out.uid, out.gid, out.uname, out.gname) == (1000, 50, "", "")


def test_tarinfo_to_box_maps_uid_and_gid_each_on_its_own() -> None:
    info = tarfile.TarInfo("f")
    info.uid, info.gid = 0, 100007  # host root's file, a mapped group
    out = idmap.tarinfo_to_box(info)
    assert (out.uid, out.gid) == (idmap.OVERFLOW, 7)
