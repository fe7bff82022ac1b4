"""The seccomp module's failure paths, each on its own: libseccomp refusing an
arch or a syscall name still yields a filter; a filter that cannot be exported,
a missing memfd, or a filter the kernel refuses is a clear UnavailableError
(boxes never run unfiltered). Faults are injected into the ``pyseccomp``
binding, ``os`` or the BPF program; the kernel and libseccomp stay real."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from typing import Any

import pyseccomp
import pytest

from boxlite_mcp.runtime.bwrap import seccomp
from boxlite_mcp.runtime.errors import UnavailableError


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    seccomp.bpf.cache_clear()
    yield
    seccomp.bpf.cache_clear()


def _names_in(program: bytes) -> int:
    return len(program) // 8


def test_an_arch_libseccomp_refuses_leaves_the_native_filter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    full = seccomp.bpf()
    seccomp.bpf.cache_clear()

    def refuse(self: Any, arch: Any) -> None:
        raise OSError(errno.EINVAL, "no such arch")

    monkeypatch.setattr(pyseccomp.SyscallFilter, "add_arch", refuse)
    native = seccomp.bpf()
    assert native and _names_in(native) < _names_in(full)


@pytest.mark.parametrize("exc", [OSError(errno.EINVAL, "bad"), ValueError("unknown")])
@pytest.mark.parametrize("name", ["keyctl", "clone3"])
def test_a_name_libseccomp_refuses_is_skipped(
    monkeypatch: pytest.MonkeyPatch, exc: Exception, name: str
) -> None:
    real = pyseccomp.SyscallFilter.add_rule

    def add_rule(self: Any, action: Any, syscall: Any, *args: Any) -> Any:
        if syscall == name:
            raise exc
        return real(self, action, syscall, *args)

    monkeypatch.setattr(pyseccomp.SyscallFilter, "add_rule", add_rule)
    assert seccomp.bpf()


def test_no_memfd_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_memfd(*args: Any) -> int:
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(os, "memfd_create", no_memfd)
    with pytest.raises(UnavailableError, match="cannot build the box's seccomp filter"):
        seccomp.bpf()


def test_an_export_failure_is_unavailable_and_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fail(self: Any, f: Any) -> None:
        raise OSError(errno.EIO, "export failed")

    monkeypatch.setattr(pyseccomp.SyscallFilter, "export_bpf", fail)
    with pytest.raises(UnavailableError, match="apt-get install libseccomp2"):
        seccomp.bpf()


def _invalid_program(monkeypatch: pytest.MonkeyPatch) -> None:
    # One BPF instruction with an undefined opcode: the kernel refuses it (EINVAL).
    monkeypatch.setattr(seccomp, "bpf", lambda: b"\xff\xff\x00\x00\x00\x00\x00\x00")


def test_a_filter_the_kernel_refuses_is_unavailable_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _invalid_program(monkeypatch)
    with pytest.raises(UnavailableError, match="Invalid argument"):
        seccomp._install()  # the refused filter is not installed on this thread


def test_a_spawner_whose_filter_fails_refuses_to_start_anything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _invalid_program(monkeypatch)
    spawner = seccomp._Spawner()
    started: list[int] = []
    with pytest.raises(UnavailableError, match="boxes cannot run without it"):
        spawner.run(lambda: started.append(1))
    assert started == []
