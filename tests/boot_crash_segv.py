"""Enabled in an actor, this module kills its process at import with SIGSEGV."""
import os
import signal

os.kill(os.getpid(), signal.SIGSEGV)
raise RuntimeError('SIGSEGV did not end this process')  # only if the signal was not fatal
