"""Everything is in pyproject.toml, but for files setuptools cannot place
from there:

- ``tractor_subint_upstream.pth`` at the top of site-packages. It makes a
  fresh interpreter started with ``TRACTOR_SPAWN_METHOD`` naming one of our
  keys register them into upstream tractor (and does nothing else).
- ``ai/conc-anal/*.md`` as ``tractor_subint/_analysis/``: our error messages
  cite these analyses (``tractor_subint.spawn._docs``), so an installed
  package must carry them.
"""
from __future__ import annotations

import glob
import os

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = 'tractor_subint_upstream.pth'
ANALYSES = sorted(glob.glob(os.path.join('ai', 'conc-anal', '*.md')))
SHIPPED_ANALYSES = os.path.join('tractor_subint', '_analysis')


class BuildPyWithPth(build_py):
    def run(self) -> None:
        super().run()
        for source, target in self._extra_files():
            self.mkpath(os.path.dirname(target))
            self.copy_file(source, target)

    def _extra_files(self) -> list[tuple[str, str]]:
        extra = [(PTH, os.path.join(self.build_lib, PTH))]
        for doc in ANALYSES:
            extra.append((doc, os.path.join(self.build_lib, SHIPPED_ANALYSES, os.path.basename(doc))))
        return extra

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), *(target for _, target in self._extra_files())]


setup(cmdclass={'build_py': BuildPyWithPth})
