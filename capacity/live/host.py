"""This machine as a live source: `collectors.psutil_sampler.Sampler` behind the loop's `Source` contract."""

from __future__ import annotations

from datetime import datetime

import psutil
import pyarrow as pa

from capacity.live.loop import SourceError
from collectors.psutil_sampler import Sampler
from collectors.psutil_sampler import name as sampler_name

name = sampler_name


class HostSource:
    """Polls the psutil sampler; a psutil failure is a failed poll (a gap), not the end of the recording."""

    def __init__(self, host: str | None = None, processes: int = 0) -> None:
        self.sampler = Sampler(host=host, processes=processes)
        self.host = self.sampler.host

    def poll(self, ts: datetime) -> list[tuple[str, pa.Table]]:
        """One sample stamped `ts`, as `(table kind, table)` batches."""
        try:
            return list(self.sampler.sample(ts).items())
        except (psutil.Error, OSError) as exc:
            raise SourceError(f"psutil: {type(exc).__name__}: {exc}") from None
