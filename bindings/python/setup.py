"""Marks the wheel as platform-specific when it carries the native library and trainer.

Everything else about the package is in pyproject.toml. ``scripts/build-wheel.sh`` copies
``libddaebm.so`` and ``bin/ddaebm-train`` into ``src/ddaebm/`` of a staging copy before it
builds; a wheel holding them only runs on the platform they were built for, so it gets the
``py3-none-<platform>`` tag (the package itself is pure Python: ctypes, no extension module)
that ``auditwheel repair`` then turns into a manylinux tag. Without them (``pip install
./bindings/python``) the wheel stays pure ``py3-none-any``.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.dist import Distribution

_PACKAGE = Path(__file__).resolve().parent / "src" / "ddaebm"
_NATIVE = any((_PACKAGE / name).exists() for name in ("libddaebm.so", "libddaebm.dylib", "ddaebm.dll"))

cmdclass = {}
if _NATIVE:
    try:
        from setuptools.command.bdist_wheel import bdist_wheel
    except ImportError:  # setuptools < 70.1: the command lives in the `wheel` package
        from wheel.bdist_wheel import bdist_wheel

    class PlatformWheel(bdist_wheel):  # type: ignore[misc]
        """``py3-none-<platform>``: any Python 3, no CPython ABI, this platform."""

        def finalize_options(self) -> None:
            super().finalize_options()
            self.root_is_pure = False

        def get_tag(self) -> tuple[str, str, str]:
            _, _, platform = super().get_tag()
            return "py3", "none", platform

    cmdclass["bdist_wheel"] = PlatformWheel


class NativeDistribution(Distribution):
    def has_ext_modules(self) -> bool:
        return _NATIVE


setup(distclass=NativeDistribution, cmdclass=cmdclass)
