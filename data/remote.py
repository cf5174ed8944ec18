"""Remote shards: bounded waits, retries for transient errors only, one-line errors naming the URL.

webdataset opens http URLs with ``curl --connect-timeout 30 --retry 30 --retry-delay 2``, so an
unresolvable or unreachable host retries for many minutes and then surfaces only as "skipping
corrupt sample". ``install()`` (run when ``soundstage.data.shards`` or ``.stream`` is imported)
puts this opener in webdataset's scheme table instead: a DNS failure, a refused connection or a
host that does not answer within ``data.remote_timeout_s`` fails at once with
``RemoteShardError``; HTTP 408/425/429/5xx are retried ``data.remote_retries`` times with backoff.
s3:// and gs:// URLs go to ``object_store`` (fsspec) under the same timeout and retry settings.
The settings travel in environment variables so DataLoader workers and DDP ranks see them too.
"""
from __future__ import annotations

import os
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import IO, Any
from urllib.parse import urlparse

from soundstage.errors import SoundstageError

TRANSIENT_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})
TIMEOUT_ENV, RETRIES_ENV = "SOUNDSTAGE_REMOTE_TIMEOUT_S", "SOUNDSTAGE_REMOTE_RETRIES"
DEFAULT_TIMEOUT_S, DEFAULT_RETRIES = 30.0, 3
MAX_BACKOFF_S = 8.0


class RemoteShardError(SoundstageError):
    """A remote shard that cannot be fetched; fatal (a wrong URL is a configuration error, not a bad sample)."""

    def __str__(self) -> str:  # webdataset appends the URL to ``args``; the message already names it
        return str(self.args[0]) if self.args else ""


def configure(timeout_s: float = DEFAULT_TIMEOUT_S, retries: int = DEFAULT_RETRIES) -> None:
    """Set the timeout and transient-error retries for this process and the processes it starts."""
    os.environ[TIMEOUT_ENV] = str(float(timeout_s))
    os.environ[RETRIES_ENV] = str(int(retries))


def settings() -> tuple[float, int]:
    """(timeout in seconds, retries) in force."""
    return float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)), int(os.environ.get(RETRIES_ENV, DEFAULT_RETRIES))


def open_url(url: str, mode: str = "rb", bufsize: int = 8192, **_: Any) -> IO[bytes]:
    """Open an http(s) URL for streaming reads (webdataset's gopen handler signature)."""
    if mode != "rb":
        raise RemoteShardError(f"{url}: soundstage reads remote shards only (mode {mode!r})")
    timeout, retries = settings()
    parsed = urlparse(url)
    _resolve(parsed.hostname or "", url, timeout)
    for attempt in range(retries + 1):
        try:
            return urllib.request.urlopen(url, timeout=timeout)
        except urllib.error.HTTPError as exc:
            if exc.code in TRANSIENT_HTTP and attempt < retries:
                time.sleep(min(MAX_BACKOFF_S, 0.5 * 2**attempt))
                continue
            tries = f" after {attempt + 1} tries" if attempt else ""
            raise RemoteShardError(f"cannot fetch {url}: HTTP {exc.code} {exc.reason}{tries}") from None
        except (urllib.error.URLError, OSError) as exc:  # refused, unreachable, timed out, TLS
            reason = getattr(exc, "reason", exc)
            raise RemoteShardError(f"cannot reach {url}: {reason} (timeout {timeout:g} s)") from None
    raise AssertionError("unreachable")


def _resolve(host: str, url: str, timeout: float) -> None:
    """Resolve ``host`` within ``timeout`` (getaddrinfo itself has no deadline)."""
    result: dict[str, BaseException] = {}

    def lookup() -> None:
        try:
            socket.getaddrinfo(host, None)
        except OSError as exc:
            result["error"] = exc

    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise RemoteShardError(f"cannot reach {url}: no DNS answer for {host!r} within {timeout:g} s")
    if "error" in result:
        error = result["error"]
        raise RemoteShardError(f"cannot reach {url}: DNS lookup of {host!r} failed ({getattr(error, 'strerror', error)})")


def install() -> None:
    """Make webdataset open http(s) URLs with ``open_url``."""
    from webdataset.gopen import gopen_schemes

    gopen_schemes["http"] = open_url
    gopen_schemes["https"] = open_url


install()
from . import object_store  # noqa: E402,F401  (registers the s3:// and gs:// openers; imports no client)
