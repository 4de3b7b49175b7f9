"""The REPL of debug mode (``_debug``): ``pdb``, imported where an actor
opens one, not at every actor's boot (pdb brings bdb, cmd, code, pprint,
readline: ~4 ms of a fresh interpreter's imports, ``bench --imports``)."""
from __future__ import annotations

import os
import pdb
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._actor import Actor
    from ._debug import _Session


class _LineReader:
    """stdin, one line per read and not a byte more (a pipe shared by the
    tree's processes keeps the lines that are not this REPL's)."""

    def readline(self) -> str:
        line = bytearray()
        while not line.endswith(b'\n'):
            byte = os.read(0, 1)
            if not byte:
                break
            line += byte
        return line.decode(errors='replace')


class ActorRepl(pdb.Pdb):
    """pdb, naming its actor in the prompt, letting go of the terminal when
    the user continues or quits."""

    def __init__(self, actor: Actor, session: _Session) -> None:
        tty = os.isatty(0)
        # Off the main thread (an actor in a subinterpreter on a worker
        # thread) pdb cannot install its SIGINT handler: signal.signal()
        # raises there.
        off_main = threading.current_thread() is not threading.main_thread()
        super().__init__(
            stdin=None if tty else _LineReader(), stdout=sys.stdout,  # type: ignore[arg-type]
            nosigint=off_main,
        )
        self.use_rawinput = tty
        self.prompt = f'({actor.name}) Pdb> '
        self._session = session

    def set_continue(self) -> None:
        self._session.release()
        super().set_continue()

    def set_quit(self) -> None:
        self._session.release()
        super().set_quit()
