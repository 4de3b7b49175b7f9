"""``python -m tractor_subint demo [--spawn-backend KEY]``,
``python -m tractor_subint bench [options]`` and ``python -m tractor_subint --version``."""
from __future__ import annotations

import argparse
import os
import platform
import sys

import trio

from . import __version__
from ._demo import demo_backend, run_demo
from .bench import _run as bench
from .spawn import ENV_VAR, available_start_methods, registered_backends, unusable_reason


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m tractor_subint')
    version = f'tractor_subint {__version__} (Python {platform.python_version()})'
    parser.add_argument('--version', action='version', version=version)
    commands = parser.add_subparsers(dest='command', required=True)
    demo = commands.add_parser('demo', help='spawn a small actor tree, do RPC and a stream')
    demo.add_argument(
        '--spawn-backend', metavar='KEY', default=None,
        help=f'one of: {", ".join(available_start_methods())} (default: $TRACTOR_SUBINT_SPAWN_METHOD, '
             f'else {demo_backend()[0]})',
    )
    bench.add_arguments(commands.add_parser(
        'bench', help='spawn benchmarks: every backend beside the bare-fork floor, in one run',
    ))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == 'bench':
        return bench.main(args, argv[1:])
    key, why, source = args.spawn_backend, '', '--spawn-backend'
    if key is None:
        key, source = os.environ.get(ENV_VAR) or None, f'${ENV_VAR}'
    if key is None:
        (key, why), source = demo_backend(), ''
    reason = unusable_reason(key)
    if reason is not None:
        every_key = ', '.join(backend.key for backend in registered_backends())
        where = f'{source}: ' if source else ''
        usable = ', '.join(available_start_methods())
        parser.error(f'{where}{reason}; usable: {usable} (all keys: {every_key})')
    trio.run(run_demo, key, why)
    return 0


if __name__ == '__main__':
    sys.exit(main())
