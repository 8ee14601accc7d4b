"""Only the compiled extensions live here; everything else is in pyproject.toml."""
from Cython.Build import cythonize
from setuptools import Extension, setup

EXTENSIONS: list[Extension] = [
    # orgloop.wal._wal is added with the WAL itself
]

setup(ext_modules=cythonize(EXTENSIONS, language_level=3))
