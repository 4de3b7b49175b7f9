"""The ``.pth`` hook's guards (``tractor_subint._pth_hook``), where no tractor
need be installed; tests/upstream runs scripts through the installed hook."""
from __future__ import annotations

import _interpreters
import subprocess
import sys
import textwrap

from tractor_subint import _pth_hook


def test_the_hook_does_nothing_in_a_subinterpreter():
    """Every subinterpreter runs ``site``: the hook must not import tractor
    (or anything of ours but itself) there, even with our key set."""
    interp = _interpreters.create('legacy')
    try:
        failure = _interpreters.exec(interp, textwrap.dedent(f'''
            import os, sys
            sys.path[:] = {sys.path!r}
            os.environ['TRACTOR_SPAWN_METHOD'] = 'subint_forkserver'
            from tractor_subint import _pth_hook
            _pth_hook.maybe_register()
            heavy = ('tractor.', 'tractor_subint.upstream', 'tractor_subint.spawn', 'msgspec')
            imported = sorted(m for m in sys.modules if m.startswith(heavy))
            assert 'tractor' not in sys.modules and imported == [], imported
        '''))
    finally:
        _interpreters.destroy(interp)
    assert failure is None, failure


def test_the_hook_registers_nothing_for_keys_that_are_not_ours():
    probe = textwrap.dedent('''
        import os, sys
        os.environ['TRACTOR_SPAWN_METHOD'] = 'trio'
        from tractor_subint import _pth_hook
        _pth_hook.maybe_register()
        print(sorted(m for m in sys.modules if m.startswith(('tractor.', 'tractor_subint.upstream'))))
    ''')
    out = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True, timeout=60)
    assert out.stdout == '[]\n' and out.stderr == '', out


def test_the_hook_s_keys_are_the_adapter_s():
    # tractor_subint.upstream imports msgspec (refused in an isolated
    # subinterpreter): the hook keeps its own copy of the keys.
    from tractor_subint.upstream._patches import OUR_KEYS

    assert _pth_hook.OUR_KEYS == OUR_KEYS
