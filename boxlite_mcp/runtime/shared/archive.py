"""Tar archives for file transfer, with BoxLite's semantics, unpacked safely.

Every runtime and the test BoxLite server move files as tar streams, the way
the BoxLite REST API does (``PUT/GET /boxes/{id}/files``):

- :func:`pack` archives a directory as its *contents* and a file as one entry
  named after its basename (upstream ``src/shared/src/tar.rs``). The archive is
  written to a spooled temporary file: small archives stay in memory, big ones
  go to disk, none is held whole in memory.
- :func:`unpack` picks BoxLite's extraction mode (``detect_extraction_mode``):
  a ``dest`` ending in ``/`` or naming an existing directory receives the
  entries; otherwise an archive holding exactly one regular file is written *as*
  ``dest``; anything else is extracted into ``dest`` as a directory.

Unpacking is safe and all-or-nothing: absolute names, ``..``, links whose target
leaves the destination, device nodes and archives over a size cap are refused
before anything is written; entries are extracted into a temporary directory
beside ``dest`` and moved into place only when all of them were written.

Async callers use :func:`apack`, :func:`aunpack` and :func:`spool`, which run
the blocking work in a worker thread and never hold an archive in memory.
"""

from __future__ import annotations

import io
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import uuid
from collections.abc import AsyncIterable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import IO, BinaryIO, overload

import anyio.to_thread

from ..errors import (
    InvalidArgumentError,
    NotFoundError,
    not_a_regular_file,
    quote_reference,
    too_big_for_transfer,
)

#: Archives above this many bytes of file content are refused (tar-bomb guard).
DEFAULT_MAX_BYTES = 8 * 1024**3
#: Archives with more entries than this are refused.
DEFAULT_MAX_ENTRIES = 1_000_000
#: Spooled archives stay in memory up to this size, then move to a temp file.
SPOOL_MEMORY_BYTES = 8 * 1024 * 1024
CHUNK_BYTES = 256 * 1024

TarFile = IO[bytes]


class ExtractionMode(Enum):
    """Where ``unpack`` puts entries (BoxLite's ``ExtractionMode``)."""

    FILE_TO_FILE = "file_to_file"
    INTO_DIRECTORY = "into_directory"


class UnsafeArchiveError(InvalidArgumentError):
    """The archive would write outside its destination, or is too big."""


@dataclass(frozen=True)
class Limits:
    """Caps applied while reading an archive."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_entries: int = DEFAULT_MAX_ENTRIES


# ---------------------------------------------------------------------------
# Pack


def new_spool() -> tempfile.SpooledTemporaryFile[bytes]:
    """A binary spooled file: memory up to ``SPOOL_MEMORY_BYTES``, disk beyond."""
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES, mode="w+b")


def pack(src: Path, out: BinaryIO | None = None) -> BinaryIO:
    """Archive ``src`` with BoxLite's rules; the returned file is positioned at 0.

    Symlinks are archived as links (never followed). Raises NotFoundError when
    ``src`` does not exist.
    """
    if not os.path.lexists(src):
        raise NotFoundError(f"{src} does not exist; pass an existing file or directory")
    target: BinaryIO = out if out is not None else new_spool()  # type: ignore[assignment]
    with tarfile.open(fileobj=target, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        if src.is_dir() and not src.is_symlink():
            for child in sorted(os.listdir(src)):
                tar.add(src / child, arcname=child, recursive=True)
        else:
            tar.add(src, arcname=src.name or "file", recursive=False)
    target.seek(0)
    return target


class HeaderWatch:
    """Check entry headers as a tar stream arrives, before it is all spooled.

    A header declaring 1 TiB followed by zeros would otherwise fill the spool up to
    the byte cap before :func:`scan` refuses it. This follows the 512-byte blocks:
    each header's declared size (a PAX ``size`` record included) counts against
    ``limits.max_bytes`` and each entry against ``limits.max_entries`` at once.
    What it cannot parse it leaves to :func:`scan` (a clear "not a tar" error).
    """

    _META_TYPES = (
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
    )
    _META_MAX = 1024 * 1024

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.total = 0
        self.entries = 0
        self._header = bytearray()
        self._skip = 0  # data and padding bytes before the next header
        self._meta: bytearray | None = None  # a PAX/GNU extension's data, being read
        self._meta_left = 0
        self._pax_size: int | None = None
        self._off = False

    def feed(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view and not self._off:
            if self._skip:
                take = min(self._skip, len(view))
                if self._meta is not None and self._meta_left:
                    keep = min(take, self._meta_left)
                    self._meta += view[:keep]
                    self._meta_left -= keep
                self._skip -= take
                view = view[take:]
                if not self._skip and self._meta is not None:
                    self._pax_size = _pax_size(bytes(self._meta))
                    self._meta = None
                continue
            take = min(tarfile.BLOCKSIZE - len(self._header), len(view))
            self._header += view[:take]
            view = view[take:]
            if len(self._header) == tarfile.BLOCKSIZE:
                block, self._header = bytes(self._header), bytearray()
                self._on_header(block)

    def _on_header(self, block: bytes) -> None:
        if block.count(0) == tarfile.BLOCKSIZE:
            return  # end-of-archive marker
        try:
            info = tarfile.TarInfo.frombuf(block, tarfile.ENCODING, "surrogateescape")
        except tarfile.HeaderError:
            self._off = True  # not ours to judge: scan() says what is wrong
            return
        size = max(info.size, 0)
        if info.type in self._META_TYPES:
            if size > self._META_MAX:
                raise UnsafeArchiveError(f"archive has a {size}-byte extended header; refused")
            self._meta, self._meta_left = bytearray(), size
            self._skip = _blocks(size)
            return
        if self._pax_size is not None:
            size, self._pax_size = self._pax_size, None
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise UnsafeArchiveError(
                f"archive has more than {self.limits.max_entries} entries; refused"
            )
        if info.isreg() or info.type not in tarfile.SUPPORTED_TYPES:
            self.total += size
            if self.total > self.limits.max_bytes:
                raise UnsafeArchiveError(_too_big(self.limits))
            self._skip = _blocks(size)


def _blocks(size: int) -> int:
    return -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


def _pax_size(data: bytes) -> int | None:
    """The ``size`` record of PAX extended-header data, if any."""
    for record in data.split(b"\n"):
        _, _, keyword_value = record.partition(b" ")
        keyword, _, value = keyword_value.partition(b"=")
        if keyword == b"size" and value.isdigit():
            return int(value)
    return None


def spool_chunks(chunks: Iterable[bytes], limits: Limits = Limits()) -> BinaryIO:
    """Collect an iterator of bytes (a response body) into a spooled file, capped.

    Entry headers are checked as they arrive (:class:`HeaderWatch`).
    """
    spool: BinaryIO = new_spool()  # type: ignore[assignment]
    total = 0
    cap = _stream_cap(limits)
    watch = HeaderWatch(limits)
    try:
        for chunk in chunks:
            total += len(chunk)
            if total > cap:
                raise UnsafeArchiveError(_too_big(limits))
            watch.feed(chunk)
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


async def spool(chunks: AsyncIterable[bytes], limits: Limits = Limits()) -> BinaryIO:
    """Async :func:`spool_chunks`: writes to disk happen in a worker thread."""
    out: BinaryIO = new_spool()  # type: ignore[assignment]
    total = 0
    cap = _stream_cap(limits)
    watch = HeaderWatch(limits)
    try:
        async for chunk in chunks:
            total += len(chunk)
            if total > cap:
                raise UnsafeArchiveError(_too_big(limits))
            watch.feed(chunk)
            if total > SPOOL_MEMORY_BYTES:
                await anyio.to_thread.run_sync(out.write, chunk)
            else:
                out.write(chunk)
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return out


#: Room for what precedes a file's bytes in a tar: its header, a PAX header with a
#: long name, and the end-of-archive blocks after it.
SINGLE_FILE_OVERHEAD = 64 * 1024


async def read_single_file(chunks: AsyncIterable[bytes], path: str, max_bytes: int) -> bytes:
    """The one regular file a box's tar of ``path`` holds, held in memory, capped.

    For ``Box.read_file`` over a tar download. The stream is consumed only up to
    ``max_bytes`` plus the tar overhead: a bigger file stops the transfer there
    (the caller's ``break`` out of the body closes the response), so a huge file
    never crosses whole. Then :func:`single_file` judges what arrived.
    """
    limit = max_bytes + SINGLE_FILE_OVERHEAD
    data = bytearray()
    cut = False
    async for chunk in chunks:
        data += chunk
        if len(data) > limit:
            cut = True
            break
    return single_file(bytes(data), path, max_bytes, cut)


def single_file(data: bytes, path: str, max_bytes: int, cut: bool) -> bytes:
    """The file in a tar of one box path (BoxLite's semantics: a file is one entry
    named after its basename, a directory is its contents), or a clear error.

    ``cut``: the stream was stopped at the cap, so ``data`` is a prefix.
    """
    name = posixpath.basename(posixpath.normpath(path))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tar:
            first = tar.next()
            if first is None:  # an empty archive: an empty directory
                raise not_a_regular_file(path, directory=True)
            if first.isreg() and first.size > max_bytes:
                raise too_big_for_transfer(quote_reference(path), first.size, max_bytes)
            if not first.isreg() or clean_name(first.name) != name:
                raise not_a_regular_file(path, directory=first.isdir() or first.name != name)
            member = tar.extractfile(first)
            content = member.read() if member is not None else b""
            if len(content) != first.size:
                raise tarfile.ReadError("truncated")
            if cut or tar.next() is not None:  # more entries: the contents of a directory
                raise not_a_regular_file(path, directory=True)
    except (tarfile.TarError, EOFError) as exc:
        if cut:
            raise too_big_for_transfer(quote_reference(path), None, max_bytes) from exc
        raise InvalidArgumentError(
            f"the box's answer for {quote_reference(path)} is not a readable tar archive "
            f"({exc}); try again, or read the file with exec_run"
        ) from exc
    return content


async def apack(src: Path) -> BinaryIO:
    """:func:`pack` in a worker thread."""
    return await anyio.to_thread.run_sync(pack, src)


# ---------------------------------------------------------------------------
# Inspect and validate


def _too_big(limits: Limits) -> str:
    return (
        f"archive exceeds the size cap of {limits.max_bytes} bytes; "
        "copy less data at once or raise the cap"
    )


def _stream_cap(limits: Limits) -> int:
    # Tar headers and padding: 1 KiB per entry is generous; the exact check is per entry.
    return limits.max_bytes + 1024 * min(limits.max_entries, 100_000) + 10 * 1024 * 1024


def clean_name(name: str) -> str:
    """The entry's path, normalised; refuse absolute paths and ``..``."""
    if name.startswith("/") or name.startswith("\\"):
        raise UnsafeArchiveError(f"archive entry {name!r} has an absolute path; refused")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UnsafeArchiveError(f"archive entry {name!r} contains '..'; refused")
    return "/".join(parts)


def _inside(path: str) -> bool:
    """Whether a normalised relative path stays within the root."""
    norm = posixpath.normpath(path)
    return not (norm == ".." or norm.startswith("../") or norm.startswith("/"))


def check_member(member: tarfile.TarInfo, *, contained_links: bool = True) -> str:
    """Validate one entry; returns its normalised name (may be '' for the root).

    ``contained_links=False`` lets symlinks point anywhere: for writers that
    resolve every path inside a root (a box), where no link can lead out.
    """
    name = clean_name(member.name)
    if member.size < 0:
        # A base-256 size field can be negative; tarfile would then step back
        # and read the same header again, up to the entry cap.
        raise UnsafeArchiveError(f"archive entry {member.name!r} has a negative size; refused")
    if (
        member.ischr()
        or member.isblk()
        or member.isfifo()
        or not (member.isreg() or member.isdir() or member.issym() or member.islnk())
    ):
        raise UnsafeArchiveError(
            f"archive entry {member.name!r} is a device, fifo or special file; refused"
        )
    if member.issym() and contained_links:
        target = member.linkname
        joined = posixpath.join(posixpath.dirname(name), target)
        if target.startswith("/") or not _inside(joined):
            raise UnsafeArchiveError(
                f"archive entry {member.name!r} is a symlink to {target!r}, "
                "outside the destination; refused"
            )
    if member.islnk():
        target = member.linkname
        if target.startswith("/") or not _inside(target):
            raise UnsafeArchiveError(
                f"archive entry {member.name!r} is a hard link to {target!r}, "
                "outside the destination; refused"
            )
    return name


class Scanned(Sequence[tarfile.TarInfo]):
    """What :func:`scan` learnt: the entry count and the first entry, nothing more.

    Holding every header would cost ~400 bytes per entry up to the entry cap, so
    only the first one is kept; ``len()`` is the entry count and index 0 is the
    first entry (all ``detect_mode`` and single-file callers need).
    """

    def __init__(self, count: int, first: tarfile.TarInfo | None, total_bytes: int) -> None:
        self.entries = count
        self.first = first
        self.total_bytes = total_bytes

    def __len__(self) -> int:
        return self.entries

    @overload
    def __getitem__(self, index: int) -> tarfile.TarInfo: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[tarfile.TarInfo]: ...

    def __getitem__(self, index: int | slice) -> tarfile.TarInfo | Sequence[tarfile.TarInfo]:
        if isinstance(index, slice):
            raise TypeError("a scan keeps only the first entry; it cannot be sliced")
        if self.first is None or index not in (0, -self.entries):
            raise IndexError("a scan keeps only the first entry")
        return self.first


def _through_symlink(parts: Iterable[str], symlinks: set[str], *, last: bool = False) -> str | None:
    """The earlier symlink entry a path walks through (or, if ``last``, ends at).

    Link targets are judged as text by :func:`check_member`; on disk, ``l1 -> .``
    then ``l2 -> l1/..`` makes l2 the destination's parent. Refusing any path
    that *crosses* a symlink of the archive closes every such chain.
    """
    stack: list[str] = []
    items = [p for p in parts if p not in ("", ".")]
    for index, part in enumerate(items):
        if part == "..":
            if stack:
                stack.pop()
            continue
        stack.append(part)
        if (last or index < len(items) - 1) and "/".join(stack) in symlinks:
            return "/".join(stack)
    return None


def _check_chain(member: tarfile.TarInfo, name: str, symlinks: set[str]) -> None:
    crossed = _through_symlink(name.split("/"), symlinks)
    if crossed is None and member.issym():
        crossed = _through_symlink(
            posixpath.dirname(name).split("/") + member.linkname.split("/"), symlinks
        )
    elif crossed is None and member.islnk():
        # os.link follows a symlink source: a hard link to one is a link through it.
        crossed = _through_symlink(member.linkname.split("/"), symlinks, last=True)
    if crossed is not None:
        raise UnsafeArchiveError(
            f"archive entry {member.name!r} goes through the archive's symlink "
            f"{crossed!r}; refused (links may not be chained through other links)"
        )


def _entries(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """Iterate a tar stream without TarFile keeping every header in ``members``."""
    kept: list[tarfile.TarInfo] = tar.members  # type: ignore[attr-defined]
    while (member := tar.next()) is not None:
        kept.clear()
        yield member


def scan(tar_file: BinaryIO, limits: Limits = Limits(), *, contained_links: bool = True) -> Scanned:
    """Read and validate every header (not the data) in bounded memory.

    Leaves the file at 0. The entry and size caps fire while streaming.
    """
    tar_file.seek(0)
    count = 0
    total = 0
    first: tarfile.TarInfo | None = None
    symlinks: set[str] = set()
    try:
        with tarfile.open(fileobj=tar_file, mode="r:") as tar:
            for member in _entries(tar):
                name = check_member(member, contained_links=contained_links)
                if contained_links:
                    _check_chain(member, name, symlinks)
                    if member.issym():
                        symlinks.add(name)
                count += 1
                if first is None:
                    first = member
                if count > limits.max_entries:
                    raise UnsafeArchiveError(
                        f"archive has more than {limits.max_entries} entries; refused"
                    )
                if member.isreg():
                    total += member.size
                    if total > limits.max_bytes:
                        raise UnsafeArchiveError(_too_big(limits))
    except tarfile.TarError as exc:
        raise InvalidArgumentError(f"not a valid tar archive: {exc}") from exc
    finally:
        tar_file.seek(0)
    return Scanned(count, first, total)


def detect_mode(
    dest: str | Path, dest_is_dir: bool, members: Sequence[tarfile.TarInfo]
) -> ExtractionMode:
    """BoxLite's ``detect_extraction_mode``, given what ``dest`` is."""
    if str(dest).endswith("/") or dest_is_dir:
        return ExtractionMode.INTO_DIRECTORY
    if len(members) == 1 and members[0].isreg():
        return ExtractionMode.FILE_TO_FILE
    return ExtractionMode.INTO_DIRECTORY


# ---------------------------------------------------------------------------
# Extract


def _extract_filter(member: tarfile.TarInfo, dest_path: str) -> tarfile.TarInfo | None:
    # Second line of defence after check_member: the stdlib's data filter, but
    # keeping the archive's permission bits (tools like `cp -a` expect them).
    mode = member.mode
    filtered = tarfile.data_filter(member, dest_path)
    if filtered is None:
        return None
    if member.isreg() or member.isdir():
        return filtered.replace(mode=mode & 0o777, deep=False)
    return filtered


def extract_tree(tar_file: BinaryIO, into: Path, limits: Limits = Limits()) -> list[str]:
    """Validate the archive, then extract every entry under the directory ``into``.

    ``into`` must be a fresh, empty directory: nothing pre-existing can redirect
    writes. Returns the normalised top-level names written.
    """
    scan(tar_file, limits)
    tops: set[str] = set()
    try:
        with tarfile.open(fileobj=tar_file, mode="r:") as tar:
            for member in tar:
                name = check_member(member)
                if not name:
                    continue  # the archive's root entry ("./"): the destination itself
                tops.add(name.split("/", 1)[0])
                member.name = name
                tar.extract(member, path=into, filter=_extract_filter)
    except tarfile.TarError as exc:
        # The stdlib filter is the second line of defence: if it stops an entry
        # check_member let through, say so as a refusal, not a tarfile traceback.
        raise UnsafeArchiveError(f"archive refused while extracting: {exc}") from exc
    except KeyError as exc:
        # tarfile looks a hard link's target up among the entries before it.
        raise InvalidArgumentError(f"archive refused while extracting: {exc.args[0]}") from exc
    finally:
        tar_file.seek(0)
    return sorted(tops)


def _temp_beside(dest: Path) -> Path:
    return dest.parent / f".{dest.name or 'dest'}.boxlite-{uuid.uuid4().hex[:12]}.tmp"


def _check_merge(src: Path, dst: Path) -> None:
    """Refuse to merge through a symlink or onto an incompatible file type."""
    for entry in os.scandir(src):
        target = dst / entry.name
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode) and entry.is_dir(follow_symlinks=False):
            raise UnsafeArchiveError(
                f"{target} is a symlink; refusing to extract a directory through it"
            )
        if entry.is_dir(follow_symlinks=False):
            if not stat.S_ISDIR(st.st_mode):
                raise InvalidArgumentError(
                    f"{target} exists and is not a directory; the archive has a directory there"
                )
            _check_merge(Path(entry.path), target)
        elif stat.S_ISDIR(st.st_mode):
            raise InvalidArgumentError(f"{target} is a directory; the archive has a file there")


def _merge(src: Path, dst: Path) -> None:
    for entry in os.scandir(src):
        target = dst / entry.name
        if (
            entry.is_dir(follow_symlinks=False)
            and os.path.isdir(target)
            and not os.path.islink(target)
        ):
            _merge(Path(entry.path), target)
        else:
            os.replace(entry.path, target)


def unpack(
    tar_file: BinaryIO | Path,
    dest: str | Path,
    limits: Limits = Limits(),
    *,
    mkdir_parents: bool = True,
) -> ExtractionMode:
    """Unpack an archive at ``dest`` with BoxLite's rules; all-or-nothing.

    ``dest`` keeps a trailing ``/`` if given as a string (it forces directory
    mode). Returns the extraction mode used.
    """
    if isinstance(tar_file, Path):
        with open(tar_file, "rb") as f:
            return unpack(f, dest, limits, mkdir_parents=mkdir_parents)
    dest_str = os.fspath(dest)
    dest_path = Path(dest_str)
    members = scan(tar_file, limits)
    staging = _temp_beside(dest_path)
    try:
        # Inside the try: even looking at dest can fail (a name too long).
        mode = detect_mode(dest_str, dest_path.is_dir(), members)
        parent = dest_path if mode is ExtractionMode.INTO_DIRECTORY else dest_path.parent
        if not parent.exists():
            if not mkdir_parents:
                raise NotFoundError(f"{parent} does not exist; create it first")
            anchor = dest_path.parent if mode is ExtractionMode.INTO_DIRECTORY else parent
            try:
                anchor.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InvalidArgumentError(f"cannot create {anchor}: {exc.strerror}") from exc
        elif not parent.is_dir():
            raise InvalidArgumentError(f"{parent} is not a directory")
        staging.mkdir()
        extract_tree(tar_file, staging, limits)
        if mode is ExtractionMode.FILE_TO_FILE:
            entry = staging / clean_name(members[0].name)
            if dest_path.is_dir() and not dest_path.is_symlink():
                raise InvalidArgumentError(f"{dest_path} is a directory")
            os.replace(entry, dest_path)
        elif not os.path.lexists(dest_path):
            os.rename(staging, dest_path)
        else:
            _check_merge(staging, dest_path)
            _merge(staging, dest_path)
    except OSError as exc:
        raise InvalidArgumentError(f"cannot unpack into {dest_str}: {exc.strerror or exc}") from exc
    finally:
        if os.path.lexists(staging):  # False, not an error, if staging was never made
            shutil.rmtree(staging)
    return mode


async def aunpack(
    tar_file: BinaryIO | Path, dest: str | Path, limits: Limits = Limits()
) -> ExtractionMode:
    """:func:`unpack` in a worker thread."""
    return await anyio.to_thread.run_sync(lambda: unpack(tar_file, dest, limits))
