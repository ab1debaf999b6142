"""Ships the top-level ``schemas/`` folder inside the wheel as ``flux_batch/_schemas``.

The JSON Schema files live at the repository's top level (editors and the docs point at them there);
``flux_batch.resources.schemas_dir`` finds them in either place, so an editable install reads the
top-level folder and a built wheel reads its packaged copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithSchemas(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        source = Path(__file__).parent / "schemas"
        target = Path(self.build_lib) / "flux_batch" / "_schemas"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target)


setup(cmdclass={"build_py": BuildWithSchemas})
