"""Binary sysstat data files (`saDD`, `sadc` output) into `host_metrics`, via `sadf -j`.

The binary layout changes between sysstat versions, so the installed `sadf`
reads it (argument list, no shell, `LC_ALL=C`) and its JSON goes through the
`sadf_json` reader. A missing sysstat, a file from another sysstat version
and a truncated file each get their own error.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from collectors.base import CollectorError, head_bytes
from collectors.sadf_json import document_table

name = "sa_binary"

# SYSSTAT_MAGIC 0xd596 in either byte order, as sadc writes the host's order.
MAGICS = (b"\x96\xd5", b"\xd5\x96")
TIMEOUT_S = 600


def detect(path: Path) -> bool:
    """A file starting with sysstat's magic number."""
    return head_bytes(path, 4)[:2] in MAGICS and len(head_bytes(path, 4)) == 4


def _format_magic(path: Path) -> str:
    raw = head_bytes(path, 4)
    order = "little" if raw[:2] == MAGICS[0] else "big"
    return f"{int.from_bytes(raw[2:4], order):#06x}"


def read(path: Path, tz: str = "UTC", host: str | None = None, warn: Callable[[str], None] | None = None,
         sadf: str | None = None, **_: object) -> dict[str, pa.Table]:
    """Run `sadf -j <file> -- -A` and read its JSON into `host_metrics`."""
    path = Path(path)
    program = sadf or shutil.which("sadf")
    if program is None:
        raise CollectorError(path, "reading binary sa files needs `sadf`: install the Debian/Ubuntu package `sysstat` "
                                   "(or convert the file elsewhere with `LC_ALL=C sadf -j FILE -- -A`)")
    if not detect(path):
        raise CollectorError(path, "not a sysstat binary data file (no 0xd596 magic number)", 1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LC_") and k not in ("LANG", "S_TIME_FORMAT")}
    env["LC_ALL"] = "C"
    try:
        done = subprocess.run([program, "-j", str(path), "--", "-A"], capture_output=True, env=env,
                              timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CollectorError(path, f"running {program} failed: {exc}") from exc
    err = done.stderr.decode("utf-8", "replace").strip()
    if done.returncode != 0 or not done.stdout.strip():
        version = subprocess.run([program, "-V"], capture_output=True, check=False).stdout.decode(errors="replace")
        installed = version.splitlines()[0] if version else "unknown sysstat version"
        if "cannot read the format" in err or "Invalid system activity file" in err:
            raise CollectorError(path, f"file format {_format_magic(path)} does not match the installed {installed}: "
                                       f"convert it with `sadf -c` or read it with the sysstat that wrote it ({err})")
        if "End of system activity file unexpected" in err:
            raise CollectorError(path, f"truncated sysstat file ({err})")
        raise CollectorError(path, f"sadf failed with exit code {done.returncode}: {err or 'no output'}")
    if err and warn:
        warn(f"{path}: sadf: {err}")
    try:
        doc = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise CollectorError(path, f"sadf -j printed invalid JSON ({exc.msg})", exc.lineno) from exc
    except UnicodeDecodeError as exc:  # damaged bytes in the file's host name or comments pass through sadf as they are
        raise CollectorError(path, f"sadf -j printed bytes that are not UTF-8 at offset {exc.start}: the file is damaged") from exc
    return {"host_metrics": document_table(path, doc, tz, host, warn, name)}
