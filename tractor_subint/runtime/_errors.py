"""Errors that cross actor boundaries, and errors about actors themselves."""
from __future__ import annotations

import builtins
import importlib
import re
import sys
import traceback as tb_module
from typing import Any, NoReturn

from .._exceptions import PUBLIC_MODULE, TractorSubintError
from ..spawn import ChildExitStatus
from ._bootspec import Uid
from ._msgs import ErrorInfo
from ._targets import MAIN_ALIAS


def _uid_text(uid: Uid) -> str:
    return f'{uid[0]}[{uid[1][:8]}]'


def qualified_type_name(cls: type) -> str:
    """``module.Qualname`` of ``cls`` as a traceback prints it (the bare
    ``Qualname`` for builtins); a script's ``__mp_main__`` is ``__main__``."""
    module = getattr(cls, '__module__', None)
    qualname = str(getattr(cls, '__qualname__', None) or cls.__name__)
    if module in (None, 'builtins'):
        return qualname
    if module == MAIN_ALIAS:
        module = '__main__'
    return f'{module}.{qualname}'


def resolve_type_name(name: str) -> type[BaseException] | None:
    """The exception class that :func:`qualified_type_name` called ``name``,
    if its module loads here (importing it if need be); else None. Never
    raises."""
    parts = name.split('.')
    candidates: list[tuple[object, list[str]]] = []
    if len(parts) == 1:
        candidates.append((builtins, parts))
    for split in range(len(parts) - 1, 0, -1):
        module_name = '.'.join(parts[:split])
        module = sys.modules.get(module_name)
        if module is None and module_name != '__main__':
            try:
                module = importlib.import_module(module_name)
            except Exception:
                module = None
        if module is not None:
            candidates.append((module, parts[split:]))
    for obj, path in candidates:
        try:
            for part in path:
                obj = getattr(obj, part)
        except Exception:
            continue
        if isinstance(obj, type) and issubclass(obj, BaseException):
            return obj
    return None


class RemoteActorError(TractorSubintError):
    """An exception raised in another actor, boxed and re-raised here.

    ``type_name`` is the error's type in the answering actor, qualified
    (``module.Qualname``; the bare name for builtins), and :attr:`boxed_type`
    is that class when its module loads here. When the error was itself a
    :class:`RemoteActorError` from deeper in the tree, ``src_type_name``,
    :attr:`src_type` and ``src_uid`` name the original one. The text holds
    the remote traceback (which, through nesting, holds the deeper ones).

    The original error's ``args`` and the plain-data entries of its
    ``__dict__`` travel along (:attr:`remote_args`, :attr:`remote_attrs`),
    so that :meth:`unwrap` and :meth:`raise_boxed` can rebuild it as its own
    type: ``except QuotaExceeded`` then works across actors, opt-in.
    """

    __module__ = PUBLIC_MODULE

    def __init__(self, info: ErrorInfo) -> None:
        self.info = info
        super().__init__(self._render())

    @property
    def type_name(self) -> str:
        return self.info.type_name

    @property
    def boxed_type(self) -> type[BaseException] | None:
        """The class of the error the answering actor raised, if its module
        loads here (a relayed error's is :class:`RemoteActorError`)."""
        return resolve_type_name(self.info.type_name)

    @property
    def src_type_name(self) -> str:
        return self.info.src_type_name

    @property
    def src_type(self) -> type[BaseException] | None:
        """The class of the original error (the deepest of a relayed one),
        if its module loads here."""
        return resolve_type_name(self.info.src_type_name)

    @property
    def remote_args(self) -> tuple[Any, ...] | None:
        """The original error's ``args``; None if they were not plain data."""
        return self.info.args

    @property
    def remote_attrs(self) -> dict[str, Any]:
        """The plain-data entries of the original error's ``__dict__``."""
        return dict(self.info.attrs)

    def unwrap(self) -> BaseException:
        """The original error rebuilt as its own type (:attr:`src_type`) with
        its ``args`` and carried attributes, and this error (whose text is the
        remote traceback) as its ``__cause__``, as ``concurrent.futures``
        does. This error itself when that type cannot be loaded or rebuilt
        here."""
        cls = self.src_type
        if cls is None or issubclass(cls, RemoteActorError):
            return self
        args = self.info.args if self.info.args is not None else (self.info.message,)
        try:
            error = cls(*args)
        except Exception:
            try:
                error = cls.__new__(cls, *args)
                error.args = args
            except Exception:
                return self
        for name, value in self.info.attrs.items():
            try:
                setattr(error, name, value)
            except Exception:
                pass  # a read-only property: the rebuilt error keeps its own
        error.__cause__ = self
        error.__suppress_context__ = True
        return error

    def raise_boxed(self) -> NoReturn:
        """Raise :meth:`unwrap`: the original type (from this error), or this
        error itself if the original cannot be rebuilt here."""
        error = self.unwrap()
        if error is self:
            raise self
        raise error from self

    @property
    def tb_str(self) -> str:
        """The remote traceback (tractor's name for :attr:`remote_traceback`)."""
        return self.info.traceback

    @property
    def src_uid(self) -> Uid:
        return self.info.src_uid

    @property
    def actor_uid(self) -> Uid:
        return self.info.actor_uid

    @property
    def remote_message(self) -> str:
        return self.info.message

    @property
    def remote_traceback(self) -> str:
        return self.info.traceback

    def _render(self) -> str:
        info = self.info
        origin = ''
        if info.src_uid != info.actor_uid:
            origin = f' (originally {info.src_type_name} in actor {_uid_text(info.src_uid)})'
        body = '\n'.join('  | ' + line for line in info.traceback.rstrip().splitlines())
        headline = f'{info.type_name}: {info.message}' if info.message else info.type_name
        text = f'{headline}\nraised in actor {_uid_text(info.actor_uid)}{origin}'
        return f'{text}\nremote traceback:\n{body}' if body else text


class ContextCancelled(RemoteActorError):
    """A context's remote task was cancelled on request, not by an error of
    its own; :attr:`canceller` is the actor that asked.

    The side that asked (``ctx.cancel()``, or an error in its own block) does
    not see this raised: to it the cancellation is an acknowledged request,
    and ``ctx.wait_for_result()`` returns this error instead. A context
    cancelled by anyone else (the callee itself, a third actor, the callee's
    actor being cancelled) raises it.
    """

    __module__ = PUBLIC_MODULE

    @property
    def canceller(self) -> Uid | None:
        return self.info.canceller


def remote_error(info: ErrorInfo) -> RemoteActorError:
    """The error to raise for a boxed ``info``: a :class:`ContextCancelled`
    when it says who cancelled, else a :class:`RemoteActorError`."""
    if info.canceller is not None:
        return ContextCancelled(info)
    return RemoteActorError(info)


def context_cancelled_info(actor_uid: Uid, task: str, canceller: Uid) -> ErrorInfo:
    """The box a callee sends when its context task ``task`` was cancelled
    on ``canceller``'s request."""
    who = 'itself' if canceller == actor_uid else f'actor {_uid_text(canceller)}'
    message = f'{task} was cancelled by {who}'
    return ErrorInfo(
        type_name=qualified_type_name(ContextCancelled), message=message, traceback='',
        src_uid=actor_uid, src_type_name=qualified_type_name(ContextCancelled),
        actor_uid=actor_uid, args=(message,), canceller=canceller,
    )


class MsgTypeError(TractorSubintError, TypeError):
    """A payload does not match the type it was declared to have (a
    context's ``pld_spec``, a parameter's or result's annotation): raised
    where it was sent, before it left, or where it arrived."""

    __module__ = PUBLIC_MODULE


class ActorFailure(TractorSubintError):
    """An actor's process died on its own: during boot (it never became
    ready), or later without being asked to.

    The message is short: what happened, the root cause when the actor
    reported one (e.g. ``ModuleNotFoundError: No module named 'x'``), and
    how the process ended. ``exit_status`` says how it ended;
    ``remote_error`` is the error it reported before dying, when it managed
    to (boot failures); :attr:`traceback` is the child's full traceback, if
    it left one.
    """

    __module__ = PUBLIC_MODULE

    def __init__(
        self,
        name: str,
        what: str,
        exit_status: ChildExitStatus | None,
        *,
        remote_error: RemoteActorError | None = None,
        stop_requested: bool = False,
    ) -> None:
        self.name = name
        self.exit_status = exit_status
        self.remote_error = remote_error
        self.stop_requested = stop_requested
        """Whether its parent had asked it to stop (the end was the parent's doing)."""
        status = exit_status.summary() if exit_status else 'exit status unknown'
        text = f'actor {name!r} {what}: {status}'
        cause = self.root_cause
        if cause:
            text = f'actor {name!r} {what}: {cause}\n  (exit: {status}; the full traceback is in .traceback)'
        super().__init__(text)

    @property
    def root_cause(self) -> str | None:
        """``Type: message`` of the deepest error the actor reported, if any."""
        if self.remote_error is not None:
            return f'{self.remote_error.src_type_name}: {self.remote_error.remote_message}'
        exc = self.exit_status.exception if self.exit_status else None
        if exc is None:
            return None
        return _last_error_line(exc.traceback) or f'{exc.type_name.rpartition(".")[2]}: {exc.message}'

    @property
    def returncode(self) -> int | None:
        return self.exit_status.returncode if self.exit_status else None

    @property
    def traceback(self) -> str | None:
        """The child's traceback, from its boot report or its exit report."""
        if self.remote_error is not None:
            return self.remote_error.remote_traceback
        exc = self.exit_status.exception if self.exit_status else None
        return exc.traceback if exc else None


class ActorCancelled(ActorFailure):
    """A call on an actor that its parent had cancelled: sent after the
    cancel (refused before anything is sent), or pending when it came.

    ``by`` says who cancelled it: ``'this caller'`` (``portal.cancel_actor()``)
    or ``'its nursery'`` (``an.cancel()``, one-cancels-all, the nursery block
    ending). The actor did not fail: the caller (or its nursery) ended it.
    """

    __module__ = PUBLIC_MODULE

    def __init__(
        self, name: str, by: str, exit_status: ChildExitStatus | None, *, pending: bool = False,
    ) -> None:
        self.by = by
        self.pending = pending
        """Whether the call was already waiting when the cancel came."""
        super().__init__(name, '', exit_status, stop_requested=True)
        text = f'actor {name!r} was cancelled (by {by})'
        if pending:
            text += ' while this call was pending'
        self.args = (text,)


def _last_error_line(traceback: str) -> str | None:
    """The ``Type: message`` line that ends a formatted traceback; in an
    exception group's drawing, the last sub-exception's (not the closing
    border, which is the text's last line)."""
    for line in reversed(traceback.rstrip().splitlines()):
        text = line.lstrip()
        if text.startswith('|'):
            text = text[2:] if text.startswith('| ') else ''
        if _ERROR_LINE.match(text) and not text.startswith(_NOT_ERROR_LINES):
            return text
    return None


_ERROR_LINE = re.compile(r'[A-Za-z_][\w.]*(: .*)?$')
_NOT_ERROR_LINES = ('Traceback (', 'During handling', 'The above exception')


MAX_MESSAGE_CHARS = 4096
MAX_TRACEBACK_CHARS = 65536
"""Bounds on a boxed error's text: an error report must always fit a frame
(and a terminal); the cut is marked in the text."""


class ValueDecodeError(TractorSubintError):
    """A call's return value (or a stream item) arrived but cannot be decoded
    here (e.g. nested deeper than the decoder goes). The actor is fine; only
    that call (or stream) failed."""

    __module__ = PUBLIC_MODULE


class StreamOverrun(TractorSubintError):
    """A stream opened with ``on_overrun='raise'`` received more items than
    its ``max_buffer`` before they were read."""

    __module__ = PUBLIC_MODULE


def box_error(
    exc: BaseException, actor_uid: Uid, *, with_data: bool = True, canceller: Uid | None = None,
) -> ErrorInfo:
    """Box ``exc`` (raised in the actor ``actor_uid``) for the wire.

    Whatever the exception does, the box can be sent: a ``__str__`` that
    raises, a huge message or text the codec cannot carry (lone surrogates)
    become a readable, bounded stand-in instead of a second error that would
    take the answer (and the actor) down with it. The original error's
    ``args`` and ``__dict__`` entries go along where they are plain data;
    without ``with_data`` they stay behind (for a box that could not be sent
    with them).
    """
    src_uid, src_type = actor_uid, qualified_type_name(type(exc))
    args, attrs = (_plain_args(exc), _plain_attrs(exc)) if with_data else (None, {})
    if isinstance(exc, RemoteActorError):
        src_uid, src_type = exc.src_uid, exc.src_type_name
        if with_data:
            args, attrs = exc.info.args, dict(exc.info.attrs)
    message = _exception_text(exc).split('\n', 1)[0]
    return ErrorInfo(
        type_name=qualified_type_name(type(exc)),
        message=_bounded(message, MAX_MESSAGE_CHARS),
        traceback=_bounded(_traceback_text(exc), MAX_TRACEBACK_CHARS),
        src_uid=src_uid,
        src_type_name=src_type,
        actor_uid=actor_uid,
        args=args,
        attrs=attrs,
        canceller=canceller,
    )


_PLAIN_SCALARS = (type(None), bool, int, float, str, bytes)
_PLAIN_DEPTH = 16


def is_plain_data(value: object, depth: int = 0) -> bool:
    """Whether every codec carries ``value`` as it is: None, bool, int,
    float, str, bytes, and lists, tuples and str-keyed dicts of those (exact
    types: an ``IntEnum`` is not an int to marshal)."""
    kind = type(value)
    if kind in _PLAIN_SCALARS:
        return True
    if depth >= _PLAIN_DEPTH:
        return False
    if isinstance(value, (list, tuple)) and kind in (list, tuple):
        return all(is_plain_data(item, depth + 1) for item in value)
    if isinstance(value, dict) and kind is dict:
        return all(type(key) is str and is_plain_data(item, depth + 1) for key, item in value.items())
    return False


MAX_ERROR_DATA = 65536
"""Bytes (roughly) of an error's ``args`` and attributes that travel with it;
larger ones stay behind, as the text does past its own bounds."""


def _data_size(value: object) -> int:
    """A rough size of plain data: its text and bytes, 8 per other item."""
    if isinstance(value, (str, bytes)):
        return len(value)
    if isinstance(value, (list, tuple)):
        return 8 + sum(_data_size(item) for item in value)
    if isinstance(value, dict):
        return 8 + sum(len(key) + _data_size(item) for key, item in value.items())
    return 8


def _carried(value: object) -> bool:
    return is_plain_data(value) and _data_size(value) <= MAX_ERROR_DATA


def _plain_args(exc: BaseException) -> tuple[Any, ...] | None:
    try:
        args = tuple(exc.args)
    except Exception:
        return None
    return args if _carried(args) else None


def _plain_attrs(exc: BaseException) -> dict[str, Any]:
    """The entries of ``exc.__dict__`` every codec carries (``__notes__``
    included); the rest stay behind."""
    try:
        entries = dict(vars(exc))
    except Exception:
        return {}
    attrs = {
        name: value for name, value in entries.items()
        if isinstance(name, str) and (name == '__notes__' or not name.startswith('__'))
        and is_plain_data(value)
    }
    return attrs if _data_size(attrs) <= MAX_ERROR_DATA else {}


def _exception_text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception as str_error:
        return f'<unprintable {type(exc).__name__}: its __str__ raised {type(str_error).__name__}>'


def _traceback_text(exc: BaseException) -> str:
    try:
        return ''.join(tb_module.format_exception(exc))
    except Exception:
        # format_exception calls str(exc) (and of every chained error).
        frames = ''.join(tb_module.format_tb(exc.__traceback__))
        return f'Traceback (most recent call last):\n{frames}{type(exc).__name__}: {_exception_text(exc)}\n'


def _bounded(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters (the cut marked), with lone
    surrogates (not encodable as UTF-8) written as escapes."""
    if len(text) > limit:
        text = f'{text[:limit]}... [{len(text) - limit} more characters cut]'
    return text.encode('utf-8', 'backslashreplace').decode('utf-8')
