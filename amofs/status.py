"""``amofs status``: what running mounts are doing, read from their control file ``MOUNT/.amofs/status``.

The control file is a JSON snapshot served by the mount itself (``AmoFS.status()`` plus what ``mount.describe``
put in ``AmoFS.info``), so no daemon socket is needed: whoever may read the mount may read its status. This
module finds amofs mounts (fstype ``fuse.amofs`` in the mount table), reads their snapshots with a timeout (a
mount whose process hangs must not hang ``amofs status``), measures upload rates from two snapshots a second
apart, and renders text or JSON.

Time left for an upload is the best case at the API's rate limit: one part per request, ``rate_limit``
requests a second (the mount's ``--rate``, 7 by default) of ``part_size`` bytes (the session's
``max_part_size`` when the mount reports it, else the spec's 512 KiB).

Must not: write to a mount, or import the filesystem (it only reads files).
"""

from __future__ import annotations

import errno
import json
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amofs.mount import FSNAME, absolute, mounts

STATUS_FILE = (".amofs", "status")
READ_TIMEOUT = 5.0
DEFAULT_PART_SIZE = 524288  # spec/NOTES.md: the sessions' max_part_size in the spec's example
DEFAULT_RATE = 7.0
BAR_WIDTH = 24


class StatusError(Exception):
    """A mount whose status cannot be read; the message is one line for the user."""


@dataclass
class Report:
    mountpoint: str
    status: dict[str, Any] | None = None
    error: str | None = None
    read_at: float = field(default_factory=time.time)


def amofs_mountpoints() -> list[str]:
    """Mount points of every amofs mount on this machine (the mount table, in mount order)."""
    kind = f"fuse.{FSNAME}"
    return [m.mountpoint for m in mounts() if m.fstype == kind]


def _read_with_timeout(path: str, timeout: float) -> bytes:
    box: list[bytes | BaseException] = []

    def work() -> None:
        try:
            with open(path, "rb") as f:
                box.append(f.read())
        except BaseException as e:  # handed to the caller's thread
            box.append(e)

    t = threading.Thread(target=work, name="amofs-status-read", daemon=True)
    t.start()
    t.join(timeout)
    if not box:
        raise StatusError(f"not answering (no status after {timeout:.0f} s; its process may be stuck)")
    got = box[0]
    if isinstance(got, BaseException):
        raise got
    return got


def read_status(mountpoint: str, timeout: float = READ_TIMEOUT) -> dict[str, Any]:
    """The parsed control file of the amofs mount at ``mountpoint`` (StatusError with one line if unreadable)."""
    path = os.path.join(mountpoint, *STATUS_FILE)
    try:
        raw = _read_with_timeout(path, timeout)
    except StatusError:
        raise
    except OSError as e:
        if e.errno == errno.ENOTCONN:
            raise StatusError(f"stale: its process has ended; clear it with: fusermount3 -uz {mountpoint}") from None
        if e.errno == errno.EACCES:
            raise StatusError("not readable by you (mounted by another user without --allow-other)") from None
        if e.errno == errno.ENOENT:
            raise StatusError("has no .amofs/status (an amofs version without status)") from None
        raise StatusError(f"cannot read its status: {e.strerror}") from None
    try:
        data = json.loads(raw)
    except ValueError:
        raise StatusError("its status is not valid JSON") from None
    if not isinstance(data, dict):
        raise StatusError("its status is not a JSON object")
    return data


def collect(mountpoints: list[str], timeout: float = READ_TIMEOUT) -> list[Report]:
    out = []
    for mp in mountpoints:
        try:
            out.append(Report(mp, read_status(mp, timeout)))
        except StatusError as e:
            out.append(Report(mp, error=str(e)))
    return out


def resolve(mountpoint: str) -> str:
    """``mountpoint`` as it appears in the mount table; StatusError when no amofs mount is there."""
    p = str(absolute(mountpoint))
    kinds = [m.fstype for m in mounts() if m.mountpoint == p]
    if not kinds:
        raise StatusError(f"{p} is not mounted")
    if kinds[-1] != f"fuse.{FSNAME}":
        raise StatusError(f"{p} is not an amofs mount (it is {kinds[-1]})")
    return p


# --- derived numbers --------------------------------------------------------------------------------------


def _uploads(st: dict[str, Any]) -> list[dict[str, Any]]:
    ups = st.get("uploads_in_flight") or []
    return [u for u in ups if isinstance(u, dict)]


def uploads_under_way(mountpoint: str) -> bool:
    """Whether the mount at ``mountpoint`` is uploading or has uploads waiting (False when unreadable)."""
    try:
        st = read_status(mountpoint)
    except StatusError:
        return False
    return bool(_uploads(st)) or bool(st.get("uploads_waiting"))


def measure_rates(before: list[Report], after: list[Report]) -> None:
    """Give each upload in ``after`` a ``rate`` (bytes/s) from how far it moved since ``before`` (matched by
    name and size; an upload that started again from 0 gets none)."""
    earlier = {r.mountpoint: r for r in before if r.status is not None}
    for rep in after:
        prev = earlier.get(rep.mountpoint)
        if rep.status is None or prev is None or prev.status is None:
            continue
        dt = rep.read_at - prev.read_at
        sent_before = {(u.get("name"), u.get("total")): u.get("sent", 0) for u in _uploads(prev.status)}
        for up in _uploads(rep.status):
            if up.get("rate") is not None or dt <= 0:
                continue
            key = (up.get("name"), up.get("total"))
            if key in sent_before and up.get("sent", 0) >= sent_before[key]:
                up["rate"] = (up.get("sent", 0) - sent_before[key]) / dt


def eta_at_rate_limit(st: dict[str, Any], up: dict[str, Any]) -> float:
    """Seconds the rest of an upload takes at best: one part per request at the mount's rate limit."""
    part = st.get("part_size") or DEFAULT_PART_SIZE
    rate = st.get("rate_limit") or DEFAULT_RATE
    left = max(int(up.get("total", 0)) - int(up.get("sent", 0)), 0)
    return math.ceil(left / part) / rate


def enrich(rep: Report) -> dict[str, Any]:
    """The JSON ``amofs status --json`` prints for one mount: the snapshot plus derived numbers."""
    if rep.status is None:
        return {"mountpoint": rep.mountpoint, "error": rep.error}
    st = dict(rep.status)
    st["mountpoint"] = st.get("mountpoint") or rep.mountpoint
    hits, misses = int(st.get("cache_hits", 0)), int(st.get("cache_misses", 0))
    st["cache_hit_rate"] = round(hits / (hits + misses), 4) if hits + misses else None
    if isinstance(st.get("started_at"), int | float):
        st["uptime_seconds"] = round(rep.read_at - st["started_at"], 1)
    ups = []
    for up in _uploads(st):
        up = dict(up)
        up.setdefault("rate", None)
        up["eta_seconds"] = round(eta_at_rate_limit(st, up), 1)
        ups.append(up)
    st["uploads_in_flight"] = ups
    st["error"] = None
    return st


# --- text --------------------------------------------------------------------------------------------------


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def human_seconds(seconds: float) -> str:
    s = max(round(seconds), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    frac = 1.0 if total <= 0 else min(max(done / total, 0.0), 1.0)
    filled = int(frac * width)
    return "[" + "#" * filled + "." * (width - filled) + f"] {frac * 100:3.0f}%"


def _home(path: str) -> str:
    home = str(Path.home())
    return "~" + path[len(home) :] if home != "/" and (path == home or path.startswith(home + "/")) else path


def render(rep: Report) -> str:
    """One mount's status as a few aligned lines."""
    if rep.status is None:
        return f"{rep.mountpoint}: {rep.error}\n"
    st = enrich(rep)
    head = [f"profile {st['profile']}" if st.get("profile") else "no profile"]
    if st.get("pid"):
        head.append(f"pid {st['pid']}")
    if "uptime_seconds" in st:
        head.append(f"up {human_seconds(st['uptime_seconds'])}")
    if st.get("read_only"):
        head.append("read-only")
    lines = [f"{st['mountpoint']}  ({', '.join(head)})"]

    def row(label: str, text: str) -> None:
        lines.append(f"  {label:<9} {text}")

    row("account", str(st.get("account", "?")))
    cache = f"{human_bytes(st.get('content_cache_bytes', 0))} of content"
    if st.get("cache_limit_bytes"):
        cache += f" (limit {human_bytes(st['cache_limit_bytes'])})"
    if st.get("cache_dir"):
        cache += f" in {_home(st['cache_dir'])}"
    row("cache", cache)
    hits, misses = st.get("cache_hits", 0), st.get("cache_misses", 0)
    rate = st["cache_hit_rate"]
    row("lookups", f"{'-' if rate is None else f'{rate * 100:.0f}%'} from cache ({hits} hits, {misses} misses)")
    limit = st.get("rate_limit")
    row(
        "requests",
        f"{st.get('requests', 0)} made, {st.get('throttled', 0)} throttled (429), {st.get('retries', 0)} retried"
        + (f"; limit {limit:g}/s" if limit else ""),
    )
    ups = st["uploads_in_flight"]
    row(
        "uploads",
        f"{len(ups)} in progress, {st.get('uploads_waiting', 0)} waiting, {st.get('uploaded', 0)} done, "
        f"{st.get('upload_failures', 0)} failed",
    )
    if ups:
        width = min(max(len(str(u.get("name", ""))) for u in ups), 32)
        per_req = human_bytes(st.get("part_size") or DEFAULT_PART_SIZE)
        for up in ups:
            name = str(up.get("name", "?"))
            name = name if len(name) <= width else name[: width - 1] + "…"
            sent, total = int(up.get("sent", 0)), int(up.get("total", 0))
            speed = f"{human_bytes(up['rate'])}/s" if up.get("rate") is not None else "-"
            lines.append(
                f"    {name:<{width}} {bar(sent, total)}  {human_bytes(sent)} of {human_bytes(total)}  {speed}  "
                f"~{human_seconds(up['eta_seconds'])} left at {limit or DEFAULT_RATE:g} req/s x {per_req}"
            )
    failed = st.get("failed_files") or []
    if failed:
        lines.append(f"  failed uploads kept locally ({len(failed)}); copy them back in to retry:")
        lines.extend(f"    {p}" for p in failed)
    return "\n".join(lines) + "\n"
