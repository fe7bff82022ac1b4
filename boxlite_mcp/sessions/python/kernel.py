"""The in-box kernel of a Python session: one stdlib-only file run by the box's ``python3``.

The host starts it as ``python3 -u -c <this file's source>`` through the runtime's
exec with stdin kept open, so it needs nothing installed in the box and works on every
runtime. Jupyter's kernel protocol (ZeroMQ sockets, a kernel package in the box) is
not available there: exec gives one stdin and two output pipes, which is all this uses.

Why it redirects its own descriptors: user code may write anything anywhere, with
``print``, ``os.write(1, ...)`` or a subprocess that inherits fd 1, so the exec's
stdout cannot carry user bytes and protocol frames side by side unframed. At start
the kernel moves the exec's stdin and stdout to private close-on-exec descriptors (the
protocol channel, which subprocesses do not inherit), points fd 0 at ``/dev/null`` and
fds 1 and 2 at pipes, and forks a forwarder process that reads those pipes and wraps
everything in length-prefixed frames. User output thus never reaches the channel raw:
NUL bytes, binary data and partial lines are payload, never framing. The kernel hands
its own frames (hello, images, a cell's end) to the forwarder through a private pipe;
the forwarder sends each after the user output already written, so a cell's output
always precedes its end, and what a dying kernel wrote last (a crash report from
``faulthandler``, output before ``os._exit``) still reaches the host.

Frames to the host are ASCII lines: a kind letter, the payload in base64, a newline.
ASCII because some runtimes deliver output as text (the official SDK decodes it as
UTF-8): raw bytes would not survive them, base64 survives everything. Kinds: ``H``
hello (JSON), ``O``/``E`` stdout/stderr bytes, ``D`` an image (mime type, a newline,
the bytes), ``R`` the end of a cell (JSON). Requests from the host are lines too: one
ASCII JSON object each (``{"op": "run", ...}``).

Interrupts: SIGINT raises ``KeyboardInterrupt`` only while a cell runs, and at most
once per cell, so it never lands in the middle of a frame; a cell that catches it and
carries on is the host's to kill. Python 3.8 or newer: the file avoids newer syntax.
"""

from __future__ import annotations

import ast
import binascii
import builtins
import faulthandler
import fcntl
import io
import json
import linecache
import os
import select
import signal
import sys
import traceback
import types
import warnings
from typing import Any

KIND_HELLO, KIND_STDOUT, KIND_STDERR, KIND_IMAGE, KIND_RESULT = b"H", b"O", b"E", b"D", b"R"
KINDS = frozenset((KIND_HELLO, KIND_STDOUT, KIND_STDERR, KIND_IMAGE, KIND_RESULT))
#: Longest line either side accepts (a request, or a frame in base64).
MAX_LINE = 96 * 1024 * 1024
#: Bytes read from a user output pipe at a time.
CHUNK = 64 * 1024
#: The kernel's private descriptors are dup'ed at or above this number.
PRIVATE_FD_BASE = 200
#: The kernel's functions a cell's traceback starts with (left out of it).
_OUTER = frozenset(
    ("run", "execute", "evaluate", "show", "display", "add_figure", "capture_pyplot")
)
#: Cells may ``await`` at top level, as in Jupyter (Python 3.8+; plain code otherwise).
TOP_LEVEL_AWAIT = getattr(ast, "PyCF_ALLOW_TOP_LEVEL_AWAIT", 0)
CO_COROUTINE = 0x80  # inspect.CO_COROUTINE, without importing inspect
IMAGE_TYPES = (
    ("_repr_png_", "image/png"),
    ("_repr_jpeg_", "image/jpeg"),
    ("_repr_svg_", "image/svg+xml"),
)


def private_dup(fd: int) -> int:
    """A copy of ``fd`` at a high number that subprocesses do not inherit."""
    copy = fcntl.fcntl(fd, fcntl.F_DUPFD, PRIVATE_FD_BASE)
    os.set_inheritable(copy, False)
    return copy


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def frame(kind: bytes, payload: bytes) -> bytes:
    """One frame: kind letter, base64 payload, newline."""
    return kind + binascii.b2a_base64(payload, newline=False) + b"\n"


class Forwarder:
    """A child process that owns the channel to the host: it frames user output and
    relays the kernel's own frames, draining user output before each of them.

    Separate from the kernel so that output written just before the kernel dies (a
    crash message, anything before ``os._exit``) still reaches the host, and so that
    nothing user code does in the kernel's threads can stall or corrupt the channel.
    """

    def __init__(self, channel: int, control: int, pipes: dict[int, bytes]) -> None:
        self.channel = channel
        self.control = control
        self.pipes = pipes
        self.pending = bytearray()

    def serve(self) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # interrupts are the kernel's
        while True:
            readable, _, _ = select.select([self.control, *self.pipes], [], [])
            for fd in readable:
                if fd == self.control:
                    self.relay()
                else:
                    self.pump(fd)

    def pump(self, fd: int) -> None:
        """Frame what is waiting on one user pipe."""
        while True:
            try:
                data = os.read(fd, CHUNK)
            except BlockingIOError:
                return
            if not data:  # every writer is gone
                del self.pipes[fd]
                os.close(fd)
                return
            write_all(self.channel, frame(self.pipes[fd], data))

    def drain(self) -> None:
        for fd in list(self.pipes):
            self.pump(fd)

    def relay(self) -> None:
        """Pass on the kernel's complete frames, each after the user output before it."""
        try:
            data = os.read(self.control, 16 * CHUNK)
        except BlockingIOError:
            return
        if not data:  # the kernel ended: pass on what it left, then end too
            self.drain()
            os._exit(0)
        self.pending += data
        while self.pending:
            if bytes(self.pending[:1]) not in KINDS:
                # Something else wrote to the control pipe: pass the bytes on as they are,
                # so the host sees a corrupt channel and ends the session; end here.
                write_all(self.channel, bytes(self.pending[:64]) + b"\n")
                os._exit(0)
            end = self.pending.find(b"\n") + 1
            if not end:
                return
            self.drain()
            write_all(self.channel, bytes(self.pending[:end]))
            del self.pending[:end]


class Kernel:
    """The user namespace, the cell runner, and the kernel's end of the control pipe."""

    def __init__(self, proto_in: int, control: int) -> None:
        self.proto_in = proto_in
        self.control = control
        self.requests = bytearray()
        self.loop: Any = None  # the asyncio loop of cells with a top-level await, once needed
        self.in_cell = False
        self.images: list[tuple[str, bytes]] = []
        self.figures_seen: set[int] = set()
        self.notes: list[str] = []
        self.limits: dict[str, int] = {}
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.reconfigure(encoding="utf-8", errors="backslashreplace")  # type: ignore[union-attr]
            except (AttributeError, ValueError):
                pass
        module = types.ModuleType("__main__")
        module.__dict__["display"] = self.display
        sys.modules["__main__"] = module
        self.namespace = module.__dict__
        faulthandler.enable()  # a crash in C code reports its Python stack on fd 2
        os.environ.setdefault("MPLBACKEND", "Agg")  # figures render to PNG, no display
        # plt.show() under Agg warns that it cannot show; here the cell's figures are shown.
        warnings.filterwarnings("ignore", message=".*non-interactive.*cannot be shown")
        signal.signal(signal.SIGINT, self.on_sigint)

    # -- the channel ------------------------------------------------------------------

    def send(self, kind: bytes, payload: bytes) -> None:
        """One frame to the host, through the forwarder (never while a cell runs)."""
        write_all(self.control, frame(kind, payload))

    def flush(self) -> None:
        """Push buffered user output into fds 1 and 2 before the cell's end is sent."""
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                stream.flush()  # type: ignore[union-attr]
            except Exception:  # a user's replacement stream may be broken: not ours to fix
                pass

    def read_request(self) -> dict[str, Any]:
        """The next request line; the host closing stdin ends the session."""
        while b"\n" not in self.requests:
            piece = os.read(self.proto_in, CHUNK)
            if not piece or len(self.requests) > MAX_LINE:
                os._exit(0)
            self.requests += piece
        line, _, rest = bytes(self.requests).partition(b"\n")
        self.requests = bytearray(rest)
        request: dict[str, Any] = json.loads(line.decode("ascii"))
        return request

    # -- running cells ----------------------------------------------------------------

    def on_sigint(self, signum: int, frame: object) -> None:
        if self.in_cell:
            self.in_cell = False
            raise KeyboardInterrupt

    def serve(self) -> None:
        hello = {"python": sys.version.split()[0], "pid": os.getpid()}
        self.send(KIND_HELLO, json.dumps(hello).encode())
        while True:
            request = self.read_request()
            if request.get("op") == "run":
                self.run(request)

    def run(self, request: dict[str, Any]) -> None:
        self.images, self.notes, self.figures_seen = [], [], set()
        self.limits = {k: int(v) for k, v in request.get("limits", {}).items()}
        outcome: dict[str, Any] = {"cell": request["cell"], "result": None, "error": None}
        try:
            try:
                self.in_cell = True
                outcome["result"] = self.execute(str(request["code"]), int(request["cell"]))
                self.in_cell = False
            except BaseException as exc:  # the cell's own failure, SystemExit included
                self.in_cell = False
                outcome["error"] = self.describe(exc)
        except KeyboardInterrupt as exc:  # the interrupt landed inside the handler above
            self.in_cell = False
            outcome["error"] = self.describe(exc)
        self.flush()
        outcome["notes"] = self.notes
        for mime, data in self.images:
            self.send(KIND_IMAGE, mime.encode() + b"\n" + data)
        self.send(KIND_RESULT, json.dumps(outcome).encode())

    def execute(self, code: str, cell: int) -> str | None:
        """Run a cell; the repr of its last expression, or None."""
        filename = f"<cell {cell}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        tree = ast.parse(code, filename, "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body[-1].value)
            del tree.body[-1]
        self.evaluate(compile(tree, filename, "exec", flags=TOP_LEVEL_AWAIT))
        value = None
        if last is not None:
            value = self.evaluate(compile(last, filename, "eval", flags=TOP_LEVEL_AWAIT))
        text = None
        if value is not None:
            self.namespace["_"] = value
            self.show(value)
            text = self.cap(repr(value), self.limits.get("result_chars", 16384))
        self.capture_pyplot()
        return text

    def evaluate(self, code: types.CodeType) -> Any:
        """Run compiled cell code; code with a top-level ``await`` runs on the session's loop."""
        if not code.co_flags & CO_COROUTINE:
            return eval(code, self.namespace)
        import asyncio  # only for cells that await: it costs an import otherwise

        if self.loop is None:
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
        return self.loop.run_until_complete(eval(code, self.namespace))

    # -- pictures ---------------------------------------------------------------------

    def display(self, *objects: object) -> None:
        """Show objects as Jupyter would: as images when they can be, else their repr."""
        for obj in objects:
            if not self.show(obj):
                print(repr(obj))

    def show(self, obj: object) -> bool:
        """Collect ``obj``'s picture (display protocol, or a matplotlib figure)."""
        if hasattr(obj, "savefig") and type(obj).__module__.startswith("matplotlib"):
            self.add_figure(obj)
            return True
        for method, mime in IMAGE_TYPES:
            render = getattr(obj, method, None)
            if not callable(render):
                continue
            data = render()
            if isinstance(data, tuple):  # (data, metadata), as IPython allows
                data = data[0]
            if isinstance(data, str):
                data = data.encode("utf-8", "backslashreplace")
            if isinstance(data, (bytes, bytearray)):
                self.add_image(mime, bytes(data))
                return True
        return False

    def add_figure(self, figure: Any) -> None:
        if id(figure) in self.figures_seen:
            return
        self.figures_seen.add(id(figure))
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", bbox_inches="tight")
        self.add_image("image/png", buffer.getvalue())

    def capture_pyplot(self) -> None:
        """Open pyplot figures are the cell's plots: render, then close them."""
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is None:
            return
        for number in pyplot.get_fignums():
            self.add_figure(pyplot.figure(number))
        pyplot.close("all")

    def add_image(self, mime: str, data: bytes) -> None:
        max_images = self.limits.get("max_images", 8)
        max_bytes = self.limits.get("max_image_bytes", 4 * 1024 * 1024)
        if len(self.images) >= max_images:
            self.notes.append(
                f"An image ({mime}) was left out: at most {max_images} images per call."
            )
        elif len(data) > max_bytes:
            self.notes.append(
                f"An image ({mime}, {len(data)} bytes) was left out: larger than {max_bytes} bytes."
            )
        else:
            self.images.append((mime, data))

    # -- reporting --------------------------------------------------------------------

    @staticmethod
    def cap(text: str, limit: int) -> str:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
        if len(text) <= limit:
            return text
        head = limit // 2
        tail = limit - head
        cut = len(text) - head - tail
        return text[:head] + f"\n[... {cut} characters cut ...]\n" + text[len(text) - tail :]

    def describe(self, exc: BaseException) -> dict[str, str]:
        """type, message and traceback of a cell's exception, without the kernel's frames."""
        limit = self.limits.get("traceback_chars", 16384)
        try:
            message = str(exc)
        except Exception:
            message = "<the exception's str() failed>"
        try:
            report = traceback.TracebackException(type(exc), exc, exc.__traceback__)
            own = Kernel.describe.__code__.co_filename  # this file's name, "<string>" under -c
            frames = report.stack
            while frames and frames[0].filename == own and frames[0].name in _OUTER:
                del frames[0]
            while frames and frames[-1].filename == own and frames[-1].name == "on_sigint":
                del frames[-1]
            text = "".join(report.format())
        except Exception:
            text = f"{type(exc).__name__}: {message}\n"
        name = type(exc).__qualname__
        module = type(exc).__module__
        if module not in ("builtins", "__main__"):
            name = f"{module}.{name}"
        return {
            "type": name,
            "message": self.cap(message, limit),
            "traceback": self.cap(text, limit),
        }


def main() -> None:
    """Move the exec's descriptors aside, start the forwarder, serve cells."""
    diagnostics = private_dup(2)
    try:
        proto_in, channel = private_dup(0), private_dup(1)
        low_read, low_write = os.pipe()
        control_read, control_write = private_dup(low_read), private_dup(low_write)
        os.close(low_read)
        os.close(low_write)
        pipes: dict[int, bytes] = {}
        for fd, kind in ((1, KIND_STDOUT), (2, KIND_STDERR)):
            read_end, write_end = os.pipe()
            os.dup2(write_end, fd)
            os.close(write_end)
            os.set_blocking(read_end, False)
            pipes[read_end] = kind
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        if os.fork() == 0:  # the forwarder: keep only the read ends and the channel
            try:
                for fd in (0, 1, 2, proto_in, control_write):
                    os.close(fd)
                os.set_blocking(control_read, False)
                Forwarder(channel, control_read, pipes).serve()
            finally:
                os._exit(0)
        for fd in (channel, control_read, *pipes):
            os.close(fd)
        kernel = Kernel(proto_in, control_write)
        builtins.display = kernel.display  # type: ignore[attr-defined]  # for modules too
        kernel.serve()
    except BaseException:  # the kernel itself failed: say why on the exec's own stderr
        os.write(diagnostics, traceback.format_exc().encode("utf-8", "backslashreplace"))
        os._exit(70)


if __name__ == "__main__":
    main()
