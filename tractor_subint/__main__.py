"""``python -m tractor_subint demo [--spawn-backend KEY]``."""
from __future__ import annotations

import argparse
import sys

import trio


def main(argv: list[str] | None = None) -> int:
    from .spawn import available_start_methods, registered_backends, unusable_reason

    parser = argparse.ArgumentParser(prog='python -m tractor_subint')
    commands = parser.add_subparsers(dest='command', required=True)
    demo = commands.add_parser('demo', help='spawn a small actor tree, do RPC and a stream')
    demo.add_argument(
        '--spawn-backend', metavar='KEY', default=None,
        help=f'one of: {", ".join(available_start_methods())} (default: '
             f'$TRACTOR_SUBINT_SPAWN_METHOD, else trio)',
    )
    args = parser.parse_args(argv)
    key = args.spawn_backend
    reason = unusable_reason(key) if key is not None else None
    if reason is not None:
        every_key = ', '.join(backend.key for backend in registered_backends())
        parser.error(
            f'{reason}; usable: {", ".join(available_start_methods())} (all keys: {every_key})'
        )
    from ._demo import run_demo

    trio.run(run_demo, key)
    return 0


if __name__ == '__main__':
    sys.exit(main())
