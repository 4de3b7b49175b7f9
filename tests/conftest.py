"""The session's guarantees (every orphan comes back to us, nothing is left
behind) and ``--spawn-backend`` come from the ``tractor_subint`` pytest
plugin (``tractor_subint.testing.pytest_plugin``), loaded through its
``pytest11`` entry point."""

pytest_plugins = ['pytester']
