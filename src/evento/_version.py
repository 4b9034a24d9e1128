"""The installed distribution's version, read from its metadata so it is written in one place: pyproject.toml."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("evento-framework")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
