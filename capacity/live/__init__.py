"""Live collection: poll a running source (Apache status, Prometheus, this machine) into the store as it goes.

`loop.poll_loop` is the schedule shared by the pollers (interval, duration,
retries with backoff, gaps, periodic flushes, a clean stop on SIGINT/SIGTERM);
`sink.StoreSink` buffers and writes chunks; `apache`, `host` and `prometheus`
are the sources. Parsing stays in `collectors`.
"""

from capacity.live.loop import Event, SourceError, StopFlag, Summary, poll_loop, stop_on_signals
from capacity.live.sink import FlushResult, Gap, StoreSink

__all__ = ["Event", "FlushResult", "Gap", "SourceError", "StopFlag", "StoreSink", "Summary", "poll_loop", "stop_on_signals"]
