"""Shards on object storage: ``s3://`` (AWS or any S3-compatible endpoint) and ``gs://`` through fsspec.

The clients (s3fs, gcsfs) are the optional ``cloud`` extra, imported on first use. Credentials and
the endpoint come only from each client's standard configuration, never from a recipe: for S3 the
AWS variables (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``,
``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_S3``) and files (``~/.aws/credentials``, ``~/.aws/config``);
for GCS Google's application-default credentials (``GOOGLE_APPLICATION_CREDENTIALS``, gcloud).

An object is streamed: webdataset reads the tar while ranged GETs fetch it ``BLOCK_BYTES`` at a time,
so a shard is never downloaded whole first. A write is an upload that appears under its name only
when closed, so a crashed writer never leaves a truncated shard. Every failure (no credentials, no
such bucket or key, access denied, an endpoint that does not answer) is a one-line
``RemoteShardError`` naming the URL, raised within ``data.remote_timeout_s``.
"""
from __future__ import annotations

import importlib
import os
from typing import IO, Any, Callable

from .remote import RemoteShardError, settings

SCHEMES = {"s3": "s3", "gs": "gcs", "gcs": "gcs"}  # URL scheme -> fsspec protocol
CLIENTS = {"s3": "s3fs", "gcs": "gcsfs"}  # fsspec protocol -> the package that implements it
CLOUD_EXTRA = "pip install 'soundstage[cloud]'"
BLOCK_BYTES = 8 * 2**20  # one ranged GET while streaming a shard
_CLIENT_ENV = ("AWS_", "GOOGLE_", "GCE_", "STORAGE_EMULATOR_HOST", "FSSPEC_", "SOUNDSTAGE_REMOTE_")
_filesystems: dict[tuple, Any] = {}


def is_object_url(url: str) -> bool:
    """True for ``s3://``, ``gs://`` and ``gcs://`` URLs."""
    scheme, sep, _ = str(url).partition("://")
    return bool(sep) and scheme in SCHEMES


def split_url(url: str) -> tuple[str, str]:
    """``gs://bucket/a/b.tar`` -> (``"gcs"``, ``"bucket/a/b.tar"``): the fsspec protocol and the path it takes."""
    scheme, _, path = url.partition("://")
    if scheme not in SCHEMES or not path.split("/", 1)[0]:
        raise RemoteShardError(f"{url}: not an object-storage URL (s3://bucket/key or gs://bucket/key)")
    return SCHEMES[scheme], path


def filesystem(url: str, verb: str = "read") -> tuple[Any, str]:
    """The fsspec filesystem serving ``url`` and the path within it (one per process and configuration)."""
    protocol, path = split_url(url)
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(_CLIENT_ENV)))
    key = (protocol, os.getpid(), env)  # a changed variable (endpoint, keys, timeout) gets a new client
    if key not in _filesystems:
        try:
            importlib.import_module(CLIENTS[protocol])
        except ImportError:
            scheme = url.partition("://")[0]
            raise RemoteShardError(
                f"cannot {verb} {url}: {scheme}:// URLs need {CLIENTS[protocol]} (the cloud extra): {CLOUD_EXTRA}"
            ) from None
        _filesystems[key] = _make_filesystem(protocol)
    return _filesystems[key], path


def _make_filesystem(protocol: str) -> Any:
    import fsspec

    timeout, retries = settings()
    if protocol == "s3":
        # botocore retries throttling, 5xx and failed connections; each connection attempt gets a share of
        # the timeout so that an endpoint that never answers fails within it.
        config = {"connect_timeout": max(1.0, timeout / (retries + 1)), "read_timeout": timeout,
                  "retries": {"total_max_attempts": retries + 1, "mode": "standard"}}
        fs = fsspec.filesystem("s3", skip_instance_cache=True, use_listings_cache=False,
                               default_block_size=BLOCK_BYTES, config_kwargs=config)
        fs.retries = retries + 1  # s3fs's own loop over dropped reads (its attempts, not retries)
        return fs
    return fsspec.filesystem("gcs", skip_instance_cache=True, cache_timeout=0, block_size=BLOCK_BYTES,
                             requests_timeout=timeout)


def _run(fs: Any, method: Callable, *args: Any, **kwargs: Any) -> Any:
    """Run one async filesystem call with a deadline (the clients' own retries can outlast the timeout)."""
    from fsspec.asyn import sync

    return sync(fs.loop, method, *args, timeout=settings()[0], **kwargs)


def error(url: str, verb: str, exc: BaseException) -> RemoteShardError:
    """One line naming ``url`` and why ``verb`` (read, write, list) failed on it."""
    if isinstance(exc, RemoteShardError):
        return exc
    name, text = type(exc).__name__, " ".join(str(exc).split())
    code = _error_code(exc)
    bucket = url.partition("://")[2].split("/", 1)[0]
    if name in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError", "DefaultCredentialsError"):
        cause = ("no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with "
                 "~/.aws/credentials)" if url.startswith("s3") else f"no credentials ({text})")
    elif isinstance(exc, FileNotFoundError):  # gcsfs does not say whether the bucket or the object is missing
        missing_bucket = code == "NoSuchBucket" or "specified bucket does not exist" in text.lower()
        cause = (f"no such bucket {bucket!r}" if missing_bucket else
                 "no such object" if url.startswith("s3") else "no such bucket or object")
    elif (isinstance(exc, PermissionError) or code in ("403", "AccessDenied", "Forbidden") or text.startswith("Forbidden")
          or getattr(exc, "code", None) in (401, 403)):  # the last: gcsfs's HttpError
        cause = f"access denied ({code}: {text})" if code and code not in text else f"access denied ({text})"
    elif name == "FSTimeoutError" or isinstance(exc, TimeoutError):
        return RemoteShardError(f"cannot reach {url}: no answer within {settings()[0]:g} s")
    elif name in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError", "ReadTimeoutError",
                  "ClientConnectorError", "ServerDisconnectedError", "ClientOSError") or isinstance(exc, ConnectionError):
        return RemoteShardError(f"cannot reach {url}: {text or name}")
    else:
        cause = f"{name}: {text}" if text else name
    return RemoteShardError(f"cannot {verb} {url}: {cause}")


def _error_code(exc: BaseException) -> str:
    """The S3 error code (``NoSuchBucket``, ``AccessDenied``, ...) of a botocore error or its cause."""
    for e in (exc, exc.__cause__, exc.__context__):
        response = getattr(e, "response", None)
        if isinstance(response, dict):
            return str(response.get("Error", {}).get("Code", ""))
    return ""


def open_url(url: str, mode: str = "rb", bufsize: int = 8192, **_: Any) -> IO[bytes]:
    """Open an object for streaming reads or an upload (webdataset's gopen handler signature)."""
    fs, path = filesystem(url, "read" if mode == "rb" else "write")
    if mode == "wb":
        try:
            return fs.open(path, "wb", block_size=BLOCK_BYTES)
        except Exception as exc:
            raise error(url, "write", exc) from None
    if mode != "rb":
        raise RemoteShardError(f"{url}: object storage is opened with mode 'rb' or 'wb', not {mode!r}")
    try:  # look the object up first: a wrong URL fails here, at once and in one line
        info = _run(fs, fs._info, path)
        if info.get("type") != "file":
            raise RemoteShardError(f"cannot read {url}: it is a prefix (a folder), not an object")
        return fs.open(path, "rb", block_size=BLOCK_BYTES, cache_type="readahead", size=info["size"])
    except Exception as exc:
        raise error(url, "read", exc) from None


def list_objects(url: str, suffixes: tuple[str, ...]) -> list[str]:
    """Every object under the prefix ``url`` (a folder: ``s3://bucket/speech/``) whose name ends with ``suffixes``."""
    fs, path = filesystem(url, "list")
    scheme = url.partition("://")[0]
    try:
        found = _run(fs, fs._find, path.rstrip("/"))
    except Exception as exc:
        raise error(url, "list", exc) from None
    return sorted(f"{scheme}://{p}" for p in found if p.endswith(suffixes))


def glob(url: str, shown: str | None = None) -> list[str]:
    """Objects matching the glob pattern ``url`` (``s3://bucket/tokens/r0-*``); errors name ``shown`` or ``url``."""
    fs, path = filesystem(shown or url, "list")
    scheme = url.partition("://")[0]
    try:
        return sorted(f"{scheme}://{p}" for p in _run(fs, fs._glob, path))
    except Exception as exc:
        raise error(shown or url, "list", exc) from None


def read_bytes(url: str) -> bytes | None:
    """The content of an object, or None when the bucket exists but the object does not."""
    fs, path = filesystem(url)
    try:
        return _run(fs, fs._cat_file, path)
    except FileNotFoundError as exc:
        failure = error(url, "read", exc)
        if "no such bucket '" in str(failure):
            raise failure from None
        return None
    except Exception as exc:
        raise error(url, "read", exc) from None


def write_bytes(url: str, data: bytes) -> None:
    """Upload ``data`` as the object ``url`` (replaced whole: readers see the old or the new content)."""
    fs, path = filesystem(url, "write")
    try:
        _run(fs, fs._pipe_file, path, data)
    except Exception as exc:
        raise error(url, "write", exc) from None


def remove(url: str) -> None:
    """Delete an object; a missing one is fine."""
    fs, path = filesystem(url, "write")
    try:
        _run(fs, fs._rm_file, path)
    except FileNotFoundError:
        pass
    except Exception as exc:
        raise error(url, "delete", exc) from None


def install() -> None:
    """Make webdataset open ``s3://``, ``gs://`` and ``gcs://`` URLs with ``open_url``."""
    from webdataset.gopen import gopen_schemes

    for scheme in SCHEMES:
        gopen_schemes[scheme] = open_url


install()
