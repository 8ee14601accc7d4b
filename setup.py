"""Only the compiled extensions live here; everything else is in pyproject.toml."""
from Cython.Build import cythonize
from setuptools import Extension, setup

EXTENSIONS: list[Extension] = [
    Extension("orgloop.wal._wal", ["src/orgloop/wal/_wal.pyx"], extra_compile_args=["-O3"]),
    Extension("orgloop.queues._queue", ["src/orgloop/queues/_queue.pyx"], extra_compile_args=["-O3"]),
]

setup(ext_modules=cythonize(EXTENSIONS, language_level=3))
