"""Enabled in an actor, this module makes its boot fail: it raises on import."""


class BootCrashError(RuntimeError):
    pass


def _explode() -> None:
    raise BootCrashError('boot_crash_raise refuses to be imported')


_explode()
