"""capacity-pipeline: ingest load-test and server data into one Parquet store and answer capacity questions."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("capacity-pipeline")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"


def open_store(path: str | None = None, *, create: bool = False):  # noqa: ANN201 - re-exported type
    """Open the store at `path` (default `CAPACITY_STORE` or `data/store`); see `capacity.store.Store`."""
    from capacity.store import Store

    return Store.open(path, create=create)


__all__ = ["__version__", "open_store"]
