"""Spawn backends for structured-concurrency actor runtimes on trio, built on
CPython subinterpreters and a forkserver."""
__version__ = '0.1.0.dev0'
