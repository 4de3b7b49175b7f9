"""Helpers for testing code that spawns: trio-parent tests, process checks."""
from ._procs import ProcInfo, become_subreaper, descendants
from ._trio_parent import trio_parent_test

__all__ = ['ProcInfo', 'become_subreaper', 'descendants', 'trio_parent_test']
