"""Debug mode: a REPL in any actor of the tree, one at a time.

With ``debug_mode=True`` (``open_root_actor``, ``open_nursery``,
``start_actor``, ``run_in_actor``), an actor that calls ``breakpoint()`` or
``await tractor_subint.pause()``, or whose call (or whose root's block) fails,
gets the terminal: a ``pdb`` REPL on the caller's frame (on the error's
traceback, after a failure). Only one actor has it at a time: the root actor
holds the tree's terminal lock (:func:`tty_session`), a child asks for it
through a connection of its own to the root and lets go by closing it when
its REPL continues or quits. The root's nursery waits for a child's REPL to
end before it cancels the tree.

Every backend's actors can have one. An actor whose trio runs in a
subinterpreter on a worker thread (``subint_forkserver``, ``subint``) reads
the same terminal (fd 0) from that thread; its pdb cannot install the SIGINT
handler that, on a main thread, lets Ctrl-C after ``continue`` break back
into the REPL (``nosigint``): there, Ctrl-C interrupts the tree, as Ctrl-C
at any prompt does (the process's handler runs on its main thread).

Reading the terminal: a REPL of a process whose stdin is not a terminal (a
pipe shared by the tree) reads one line at a time, byte by byte, so that it
never takes lines meant for the next actor's REPL.
"""
from __future__ import annotations

import os
import socket
import struct
import sys
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from ..log import get_logger
from ._context import Context, context
from ._msgs import Hello, OpenContext, Started
from ._state import current_actor, current_actor_or_none

if TYPE_CHECKING:
    from ._actor import Actor

log = get_logger('runtime')

_HEADER = struct.Struct('>I')


# -- the terminal lock --------------------------------------------------------------

@context
async def tty_session(ctx: Context) -> None:
    """(Root) Hold the tree's terminal for the caller until it closes its
    channel (or cancels): ``started()`` once it is its turn."""
    actor = current_actor()
    async with actor.tty_lock:
        actor.tty_owner = ctx.peer_uid
        try:
            await ctx.started()
            await trio.sleep_forever()
        finally:
            actor.tty_owner = None


class _Session:
    """This actor's hold on the tree's terminal; :meth:`release` is sync
    (pdb's continue and quit call it)."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


def _acquire_sync(actor: Actor) -> _Session:
    """Block (this thread, the actor's trio loop with it) until the root
    hands this actor the terminal. Talks the wire protocol over a blocking
    socket of its own, in marshal (every interpreter speaks it)."""
    if actor.is_root:
        lock = actor.tty_lock
        try:
            lock.acquire_nowait()
        except trio.WouldBlock:
            log.warning('a child holds the terminal: the root\'s REPL shares it')
            return _Session(lambda: None)
        actor.tty_owner = actor.uid
        return _Session(lambda: _release_root(actor))
    from ._codec import get_codec

    codec = get_codec('marshal')
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(actor.registrar_address)

        def send(msg: Any) -> None:
            data = codec.encode(msg)
            sock.sendall(_HEADER.pack(len(data)) + data)

        def recv() -> Any:
            (length,) = _HEADER.unpack(_read(sock, _HEADER.size))
            return codec.decode(_read(sock, length))

        send(Hello(actor.uid, os.getpid(), ['marshal']))
        recv()  # the root's hello
        send(OpenContext(1, __name__, 'tty_session', {}, actor.uid, 1))
        while not isinstance(recv(), Started):
            pass
    except (OSError, EOFError) as exc:
        sock.close()
        log.warning('debug mode: the root (the terminal\'s keeper) does not answer (%r): '
                    'this REPL does not wait for its turn', exc)
        return _Session(lambda: None)
    return _Session(sock.close)


def _read(sock: socket.socket, n: int) -> bytes:
    data = b''
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError('the root closed the terminal session')
        data += chunk
    return data


def _release_root(actor: Actor) -> None:
    actor.tty_owner = None
    actor.tty_lock.release()


async def _acquire(actor: Actor) -> _Session:
    """:func:`_acquire_sync`, waiting in trio where that is possible (the
    root's own lock)."""
    if actor.is_root:
        await actor.tty_lock.acquire()
        actor.tty_owner = actor.uid
        return _Session(lambda: _release_root(actor))
    return _acquire_sync(actor)


async def wait_for_tty(actor: Actor) -> None:
    """(Root) Until no actor holds the terminal (a child in its REPL)."""
    if actor.is_root and actor.debug_mode:
        async with actor.tty_lock:
            pass


# -- the REPL (``_repl``) -----------------------------------------------------------

async def pause(*, shield: bool = False, hide_tb: bool = True) -> None:
    """Stop here in a REPL (debug mode): on the caller's frame, once this
    actor has the tree's terminal. Like any checkpoint, it raises
    ``trio.Cancelled`` in a cancelled scope, unless ``shield`` (as
    tractor's). ``hide_tb`` is accepted for tractor's signature."""
    actor = current_actor()
    if not shield:
        await trio.lowlevel.checkpoint_if_cancelled()
    with trio.CancelScope(shield=True):
        session = await _acquire(actor)
    caller = sys._getframe(1)
    _start(actor, session, caller)


def _start(actor: Actor, session: _Session, frame: types.FrameType) -> None:
    from ._repl import ActorRepl  # pdb and its company load only where a REPL opens

    repl = ActorRepl(actor, session)
    print(f'\n[{actor.name}] paused (pid {os.getpid()})', flush=True)
    repl.set_trace(frame)


async def post_mortem(*, shield: bool = False, hide_tb: bool = True) -> None:
    """(Debug mode) A REPL on the exception being handled (``except ...:
    await post_mortem()``), once this actor has the terminal; ``shield``
    as for :func:`pause`."""
    actor = current_actor()
    if not shield:
        await trio.lowlevel.checkpoint_if_cancelled()
    error = sys.exception()
    if error is None:
        raise RuntimeError('post_mortem() needs an exception being handled (call it in an except block)')
    await crash_repl(actor, error)


def breakpoint_hook(*_args: Any, **_kwargs: Any) -> None:
    """``sys.breakpointhook`` in a debug-mode actor: :func:`pause` from sync
    code."""
    actor = current_actor_or_none()
    if actor is None:
        import pdb

        pdb.Pdb().set_trace(sys._getframe(1))
        return
    _start(actor, _acquire_sync(actor), sys._getframe(1))


def describe_crash(error: BaseException) -> str:
    """``Type: message``; a group also names what it holds (a task nursery's
    group around one ``AssertionError`` says so before the prompt)."""
    described = f'{type(error).__name__}: {error}'
    if isinstance(error, BaseExceptionGroup):
        leaves = [f'{type(e).__name__}: {e}' for e in _leaves(error)]
        described += f" [{'; '.join(leaves)}]"
    return described


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for error in group.exceptions:
        found.extend(_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    return found


async def crash_repl(actor: Actor, error: BaseException) -> None:
    """A REPL on ``error``'s traceback (debug mode), once this actor has the
    terminal (nothing for an error without a traceback)."""
    if error.__traceback__ is None:
        return
    from ._repl import ActorRepl

    with trio.CancelScope(shield=True):
        session = await _acquire(actor)
    try:
        print(f'\n[{actor.name}] crashed: {describe_crash(error)}', flush=True)
        repl = ActorRepl(actor, session)
        repl.reset()
        repl.interaction(None, error.__traceback__)
    finally:
        session.release()


def install_breakpoint_hook() -> Callable[[], None]:
    """Make ``breakpoint()`` this actor's REPL; returns the undo."""
    previous = sys.breakpointhook
    sys.breakpointhook = breakpoint_hook

    def undo() -> None:
        sys.breakpointhook = previous

    return undo
