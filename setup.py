"""Everything is in pyproject.toml, but for one file setuptools cannot place
from there: ``tractor_subint_upstream.pth`` at the top of site-packages. It
makes a fresh interpreter started with ``TRACTOR_SPAWN_METHOD`` naming one
of our keys register them into upstream tractor (and does nothing else)."""
from __future__ import annotations

import os

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = 'tractor_subint_upstream.pth'


class BuildPyWithPth(build_py):
    def run(self) -> None:
        super().run()
        self.copy_file(PTH, os.path.join(self.build_lib, PTH))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), os.path.join(self.build_lib, PTH)]


setup(cmdclass={'build_py': BuildPyWithPth})
