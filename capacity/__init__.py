"""capacity-pipeline: ingest load-test and server data into one Parquet store and answer capacity questions."""


def __getattr__(name: str) -> str:
    # `__version__` is looked up when asked for: importlib.metadata and the lookup are 40 ms that
    # every command would pay at start-up for a string only `--version` prints.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("capacity-pipeline")
        except PackageNotFoundError:  # running from a source tree that was not installed
            return "0.0.0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(path: str | None = None, *, create: bool = False):  # noqa: ANN201 - re-exported type
    """Open the store at `path` (default `CAPACITY_STORE` or `data/store`); see `capacity.store.Store`."""
    from capacity.store import Store

    return Store.open(path, create=create)


__all__ = ["__version__", "open_store"]
