"""The package's loggers, and the console switch ``$TRACTOR_SUBINT_LOG``.

Loggers: ``tractor_subint`` and one child per layer
(``tractor_subint.runtime``, ``tractor_subint.spawn``, ...; see
:func:`get_logger`). As a library should, the package only logs: the
package logger has a :class:`logging.NullHandler`, so an application that
configured nothing sees nothing (not even warnings, through logging's
last-resort handler), and one that configured logging gets the package's
records through its own handlers, as from any library. Every record carries
``actor`` (the running actor's name, ``-`` outside one), for a format that
wants it.

The console: ``TRACTOR_SUBINT_LOG=debug`` (any level name) in the
environment, or :func:`enable_console` in code, prints the package's lines
on stderr in one format with the wall-clock time, the actor's name and the
pid. Those lines then stop propagating to the application's handlers, so an
application that called ``logging.basicConfig()`` sees each line once (the
way ``multiprocessing``'s logger behaves). Children inherit the console
level: through the environment, and through their boot spec (see
:func:`console_level`), so a level set in code reaches them too.

Stdlib only: every kind of process of a tree may load it (the forkserver
does not: it logs nothing).
"""
from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import TextIO

__all__ = [
    'DATE_FORMAT',
    'FORMAT',
    'LOG_ENV',
    'ROOT_LOGGER',
    'ActorTag',
    'CUSTOM_LEVELS',
    'ConsoleHandler',
    'console_level',
    'disable_console',
    'enable_console',
    'get_console_log',
    'get_logger',
    'level_name',
    'level_number',
]

ROOT_LOGGER = 'tractor_subint'
LOG_ENV = 'TRACTOR_SUBINT_LOG'

FORMAT = '%(asctime)s.%(msecs)03d %(actor)s[%(process)d] %(levelname)s %(name)s: %(message)s'
DATE_FORMAT = '%H:%M:%S'
"""The console's line: ``14:03:07.512 worker-1[4711] DEBUG tractor_subint.runtime: ...``."""

CUSTOM_LEVELS: dict[str, int] = {'TRANSPORT': 5, 'RUNTIME': 15, 'DEVX': 17, 'CANCEL': 22, 'PDB': 500}
"""tractor's extra level names, accepted wherever a level is (``loglevel='cancel'``)."""

for _name, _number in CUSTOM_LEVELS.items():
    if logging.getLevelName(_number) != _name:
        logging.addLevelName(_number, _name)

_actor_name = '-'
"""The running actor's name (set by the runtime; per interpreter, as this
module is)."""


def set_actor_name(name: str | None) -> None:
    """Tag this interpreter's records with ``name`` (None: outside an actor)."""
    global _actor_name
    _actor_name = name or '-'


class ActorTag(logging.Filter):
    """Gives each record an ``actor`` attribute: this interpreter's actor."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, 'actor'):
            record.actor = _actor_name
        return True


_TAG = ActorTag()


def get_logger(name: str | None = None) -> logging.Logger:
    """The package's logger for ``name``, a layer or a user's module
    (``'runtime'`` gives ``tractor_subint.runtime``; a name that already
    starts with ``tractor_subint`` is taken as is; None gives the package
    logger). tractor's ``get_logger(name)``: its records reach the console
    (:func:`enable_console`) with the package's."""
    if not name:
        full = ROOT_LOGGER
    elif name == ROOT_LOGGER or name.startswith(ROOT_LOGGER + '.'):
        full = name
    else:
        full = f'{ROOT_LOGGER}.{name}'
    logger = logging.getLogger(full)
    if _TAG not in logger.filters:
        logger.addFilter(_TAG)
    return logger


def get_console_log(level: str | int | None = None, name: str | None = None) -> logging.Logger:
    """tractor's spelling: turn the console on at ``level`` (when given; see
    :func:`enable_console`) and return the logger ``name`` (see
    :func:`get_logger`)."""
    if level is not None:
        enable_console(level)
    return get_logger(name)


def level_number(level: str | int) -> int:
    """``level`` (a name in any case, or a number) as a logging level;
    :class:`ValueError` naming the valid names if it is none."""
    if isinstance(level, int):
        return level
    text = level.strip()
    if text.isdigit():
        return int(text)
    number = logging.getLevelNamesMapping().get(text.upper())
    if number is None:
        names = ', '.join(
            name.lower() for name in ('DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL', *CUSTOM_LEVELS)
        )
        raise ValueError(f'{level!r} is not a logging level: use one of {names} (or a number)')
    return number


def level_name(level: str | int) -> str:
    """``level`` checked (:func:`level_number`) and named as a boot spec
    carries it (``'INFO'``; a number without a name as its digits)."""
    number = level_number(level)
    name = logging.getLevelName(number)
    return name if logging.getLevelNamesMapping().get(name) == number else str(number)


class ConsoleHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is when a record comes (pytest's
    capture, a child's redirected stdio), like logging's last resort."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
        self.addFilter(_TAG)  # records of loggers not made by get_logger

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def _console() -> ConsoleHandler | None:
    return next((h for h in get_logger().handlers if isinstance(h, ConsoleHandler)), None)


def enable_console(level: str | int) -> logging.Handler:
    """Print the package's records at ``level`` and above on stderr, each
    line once (see the module docstring). Idempotent; a second call changes
    the level. Returns the handler. Children spawned from now on inherit
    the level."""
    number = level_number(level)
    logger = get_logger()
    handler = _console()
    if handler is None:
        handler = ConsoleHandler()
        logger.addHandler(handler)
    logger.setLevel(number)
    logger.propagate = False
    return handler


def disable_console() -> None:
    """Undo :func:`enable_console`: records propagate to the application's
    handlers again, at the level the application chooses."""
    logger = get_logger()
    handler = _console()
    if handler is not None:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True


def console_level() -> str | None:
    """The console's level name, if it is on here: what a child's boot spec
    carries, so that the child prints at the same level."""
    if _console() is None:
        return None
    return level_name(get_logger().level)


def configure_from_env() -> None:
    """Turn the console on if ``$TRACTOR_SUBINT_LOG`` names a level; warn
    (and leave it off) if it names none."""
    level = os.environ.get(LOG_ENV, '').strip()
    if not level:
        return
    try:
        enable_console(level)
    except ValueError as exc:
        warnings.warn(f'${LOG_ENV} ignored: {exc}', RuntimeWarning, stacklevel=2)


get_logger().addHandler(logging.NullHandler())
configure_from_env()
