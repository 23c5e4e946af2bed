"""The S3 object area: content-addressed objects in a bucket, staging and a cache on local disk.

Layout::

    s3://BUCKET/PREFIX/objects/ab/cdef...       one object per distinct content (blake3 digest)
    $CKPTSTORE_CACHE_DIR (~/.cache/ckptstore)/s3/BUCKET/<prefix hash>/
        staging/...ckptstore-tmp/               where TensorFlow writes a save (this host only)
        cache/objects/ab/cdef...                digest-checked downloads (files.cache)

**The commit point is still the database transaction.** A save uploads its objects (skipping
those the bucket already has, multipart and in parallel) and only then commits the rows that
reference them; a crash before the commit leaves objects no row names, which ``gc`` removes
once they are older than its grace period. There is no lock across hosts: ``writing()`` and
``deleting()`` are no-ops here, and the intents recorded in the database (``metadata.intents``,
used by ``files.commit`` and ``flows.maintenance``) keep ``gc`` away from objects a save on
another host is about to reference. docs/architecture.md has the protocol and its argument.

Endpoint, region and credentials come from the standard AWS environment and config files of
each host (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``, ...); nothing here
stores or prints them. Every failure becomes one line naming the bucket and what failed, never
a key or the server's own message (which may quote signed request details).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import CorruptFileError, MissingFileError, ObjectStoreError, StoreConfigError, from_os_error
from ..location import BucketRoot, parse_bucket_root, redact
from .area import ObjectArea, StoredFile, file_label
from .cache import ObjectCache
from .local import LocalObjectArea

log = logging.getLogger(__name__)

#: Objects at least this large go up and down in parts, several at a time.
MULTIPART_THRESHOLD = 32 << 20
PART_SIZE = 16 << 20
CONCURRENCY = 10
_MISSING = {"404", "NoSuchKey", "NotFound"}
_DENIED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "AllAccessDisabled"}


def default_local_dir(root: BucketRoot) -> Path:
    base = os.environ.get("CKPTSTORE_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "ckptstore")
    tag = hashlib.sha256(root.prefix.encode()).hexdigest()[:12]
    return Path(base) / "s3" / root.bucket / tag


class S3ObjectArea(ObjectArea):
    """Objects in ``s3://bucket/prefix``; staging and a bounded cache on this host's disk."""

    #: Deletion is coordinated through database intents, not a lock (see module docstring).
    shared_across_hosts = True

    def __init__(
        self,
        root: BucketRoot,
        *,
        local_dir: str | os.PathLike[str] | None = None,
        cache_limit: int | None = None,
        client: Any = None,
    ) -> None:
        self.root = root
        self.bucket = root.bucket
        self.local_dir = Path(local_dir) if local_dir is not None else default_local_dir(root)
        # Staging is the local backend's, unchanged: a locked directory per save on this host.
        self._staging = LocalObjectArea(self.local_dir)
        self.cache = ObjectCache(self.local_dir / "cache", cache_limit)
        self._client = client
        self._transfer: Any = None
        self._lock = threading.RLock()
        #: S3 operations sent by this process, by name (HeadObject, GetObject, ...).
        self.requests: Counter[str] = Counter()
        self._bucket_checked = False
        self._damaged: list[tuple[str, str]] = []

    @classmethod
    def from_url(cls, url: str, *, fsync: bool = False) -> S3ObjectArea:
        """``s3://bucket/prefix``; ``fsync`` has no meaning for a bucket (a completed PUT is durable)."""
        root = parse_bucket_root(url)
        if root is None:
            raise StoreConfigError(f"{redact(url)!r} is not an s3://BUCKET/PREFIX root")
        return cls(root)

    @property
    def url(self) -> str:
        return str(self.root)

    @property
    def location(self) -> BucketRoot:
        return self.root

    # ------------------------------------------------------------------ client

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = _make_client()
                self._client.meta.events.register("before-call.s3", self._count)
            return self._client

    def _count(self, model: Any = None, **_: Any) -> None:
        if model is not None:
            self.requests[model.name] += 1

    @property
    def transfer(self) -> Any:
        with self._lock:
            if self._transfer is None:
                from boto3.s3.transfer import TransferConfig, create_transfer_manager

                cfg = TransferConfig(
                    multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=PART_SIZE,
                    max_concurrency=CONCURRENCY, use_threads=True,
                )
                self._transfer = create_transfer_manager(self.client, cfg)
            return self._transfer

    def key_of(self, digest: str) -> str:
        rel = f"objects/{digest[:2]}/{digest[2:]}"
        return f"{self.root.prefix}/{rel}" if self.root.prefix else rel

    def describe(self, digest: str | None = None) -> str:
        return f"s3://{self.bucket}/{self.key_of(digest)}" if digest is not None else str(self.root)

    def _fail(self, exc: BaseException, what: str) -> Exception:
        """One line for a failed request: which bucket, what, why, no secret (see module doc)."""
        from botocore import exceptions as bx

        where = f"s3://{self.bucket}"
        local = _local_disk_error(exc)
        if local is not None:
            # The download writes into this host's cache: a full disk there is not the network.
            return from_os_error(f"{what}: cannot write into the cache {self.cache.root}", local)
        if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
            return StoreConfigError(f"no AWS credentials for {where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE")
        if _no_answer(exc):
            # Before the codes: a request that got no answer says nothing about keys or buckets
            # (and _code would find the status of an earlier request this one was sent after).
            return ObjectStoreError(f"{what} failed: the object store at {self._endpoint()} did not answer ({type(exc).__name__}, after retries)")
        code = _code(exc)
        if code == "NoSuchBucket":
            return StoreConfigError(f"bucket {self.bucket!r} does not exist at {self._endpoint()}")
        if code in _DENIED:
            return StoreConfigError(f"access to {where} denied ({code}): check the AWS credentials of this host")
        if code in _MISSING:
            return MissingFileError(f"{what}: not found in {where}")
        if code:
            return ObjectStoreError(f"{what} failed: {where} answered {code} (after retries)")
        return ObjectStoreError(f"{what} failed: {type(exc).__name__} talking to {self._endpoint()}")

    def _endpoint(self) -> str:
        try:
            url = self.client.meta.endpoint_url
        except Exception:  # noqa: BLE001 - only for a message
            url = "the configured endpoint"
        return redact(str(url))

    @contextlib.contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        try:
            yield
        except (MissingFileError, CorruptFileError, StoreConfigError, ObjectStoreError):
            raise
        except Exception as exc:  # noqa: BLE001 - every client failure becomes one line
            err = self._fail(exc, what)
            if isinstance(err, MissingFileError):
                self._check_bucket()
            raise err from None

    def _check_bucket(self) -> None:
        """A HEAD on a missing bucket looks like a missing object: tell them apart once."""
        if self._bucket_checked:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:  # noqa: BLE001
            code = "" if _no_answer(exc) else _code(exc)
            if code in _MISSING or code == "NoSuchBucket":
                raise StoreConfigError(f"bucket {self.bucket!r} does not exist at {self._endpoint()}") from None
            raise self._fail(exc, f"checking bucket {self.bucket}") from None
        self._bucket_checked = True

    # ------------------------------------------------------------------ staging (local)

    def staging(self, what: str) -> contextlib.AbstractContextManager[Path]:
        return self._staging.staging(what)

    def stale_staging(self) -> list[str]:
        return self._staging.stale_staging()

    def remove_staging(self, names: Iterable[str]) -> int:
        return self._staging.remove_staging(names)

    def writing(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def deleting(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    # ------------------------------------------------------------------ ingest

    def put(self, path: Path, digest: str, size: int, recorded_sig: str | None = None) -> StoredFile:
        return self.put_many([(path, digest, size)])[0]

    def put_many(
        self,
        items: Sequence[tuple[Path, str, int]],
        recorded: dict[str, str | None] | None = None,
        after_each: Callable[[], None] | None = None,
    ) -> list[StoredFile]:
        """Upload the objects the bucket lacks (HEAD first), all at once, big ones in parts;
        returns when every one is complete in the bucket. The local files are consumed (moved
        into this host's cache)."""
        unique = {d: (p, d, n) for p, d, n in items}
        recorded = recorded or {}

        def usable(d: str) -> str | None:
            # Present with the right size, and (if the database knows its signature) unchanged
            # since it was put: otherwise the fresh copy replaces it (a garbled object would
            # else be referenced by a new checkpoint too).
            head = self.head(d)
            if head is None or head[0] != unique[d][2]:
                return None
            if _is_etag(recorded.get(d)) and recorded[d] != head[1]:
                log.warning("replacing object %s: it changed since it was stored", d[:12])
                return None
            return head[1]

        with ThreadPoolExecutor(CONCURRENCY) as pool:
            sigs = dict(zip(unique, pool.map(usable, unique)))
        present = {d: sig is not None for d, sig in sigs.items()}
        futures = []
        with self._translated(f"uploading to {self.root}"):
            for d, (p, _, _) in unique.items():
                if not present[d]:
                    futures.append(self.transfer.upload(str(p), self.bucket, self.key_of(d)))
            for fut in futures:
                fut.result()
                if after_each:
                    after_each()
        self.cache.adopt_many([(p, d) for p, d, _ in unique.values()])
        for p, _, _ in items:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        log.info("put %d objects into %s (%d uploaded, %d already there)", len(unique), self.root, len(futures), len(unique) - len(futures))
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            for d, sig in zip([d for d in unique if not present[d]], pool.map(self.head, [d for d in unique if not present[d]])):
                sigs[d] = sig[1] if sig is not None else None
        return [StoredFile(d, n, sigs.get(d)) for _, d, n in items]

    # ------------------------------------------------------------------ reading and checking

    def size_of(self, digest: str) -> int | None:
        head = self.head(digest)
        return head[0] if head is not None else None

    def head(self, digest: str) -> tuple[int, str] | None:
        """(size, signature) of the object, or None if absent. The signature is the ETag: any
        rewrite of the object with other bytes changes it."""
        with self._translated(f"looking up {self.describe(digest)}"):
            try:
                resp = self.client.head_object(Bucket=self.bucket, Key=self.key_of(digest))
            except Exception as exc:  # noqa: BLE001
                if _code(exc) in _MISSING:
                    self._check_bucket()
                    return None
                raise
            return int(resp["ContentLength"]), "etag:" + str(resp.get("ETag", "")).strip('"')

    def local_path(self, digest: str, size: int | None = None) -> Path:
        """The object in this host's cache, downloaded (and digest-checked) if needed."""
        if size is None:
            hit = self._cached_any(digest)
            if hit is not None:
                return hit
        return self.cache.fill(digest, self._size(digest, size), self._fetcher(digest))

    def held_path(self, digest: str) -> contextlib.AbstractContextManager[Path]:
        cached = self.cache.path_of(digest)
        try:
            size: int | None = os.stat(cached).st_size
        except FileNotFoundError:
            size = None
        return self.cache.hold(digest, self._size(digest, size), self._fetcher(digest))

    def _size(self, digest: str, size: int | None) -> int:
        if size is None:
            size = self.size_of(digest)
            if size is None:
                raise MissingFileError(f"stored file {digest[:12]} is missing from {self.root}")
        return size

    def _fetcher(self, digest: str) -> Callable[[Path], None]:
        def fetch(tmp: Path) -> None:
            with self._translated(f"downloading {self.describe(digest)}"):
                self.transfer.download(self.bucket, self.key_of(digest), str(tmp)).result()

        return fetch

    def _cached_any(self, digest: str) -> Path | None:
        return self.cache.get(digest, None)

    def open(self, digest: str) -> BinaryIO:
        for _ in range(4):
            try:  # an open file outlives an eviction; one evicted before the open is fetched again
                return open(self.local_path(digest), "rb")
            except FileNotFoundError:
                continue
        return open(self.local_path(digest), "rb")

    def read_range(self, digest: str, offset: int, size: int) -> bytes:
        """From this host's cache if the object is there, else one ranged GET: reading one
        tensor (``read_variable``) or confirming one piece fetches that piece, not the object.
        The caller checks the bytes against the piece's or tensor's digest."""
        hit = self._cached_any(digest)
        if hit is not None:
            with contextlib.suppress(FileNotFoundError):  # evicted meanwhile: ask the bucket
                with open(hit, "rb") as f:
                    f.seek(offset)
                    return f.read(size)
        if size <= 0:
            return b""
        with self._translated(f"reading {self.describe(digest)}"):
            try:
                resp = self.client.get_object(Bucket=self.bucket, Key=self.key_of(digest), Range=f"bytes={offset}-{offset + size - 1}")
            except Exception as exc:  # noqa: BLE001
                if _code(exc) in _MISSING:
                    self._check_bucket()
                    raise MissingFileError(f"stored file {digest[:12]} is missing from {self.root}") from None
                if _code(exc) in ("InvalidRange", "416"):
                    return b""  # past the object's end: the caller reports it shorter than recorded
                raise
            return resp["Body"].read()

    def check(self, digest: str, size: int, stat_sig: str | None, *, full: bool, name: str) -> str | None:
        """Without ``full``: a cached copy (unchanged since it was hashed, else hashed again) or
        the bucket's size answers. With ``full``: the bucket's bytes are re-hashed as they
        stream. Either way a damaged cached copy is reported (and removed): it would have
        been served."""
        try:
            cached = self.cache.checked(digest, size)
        except CorruptFileError as exc:  # removed; the bucket's copy is checked below
            self._damaged.append((digest, str(exc)))
            cached = None
        if not full:
            if cached is not None:
                return None
            head = self.head(digest)
            if head is None:
                raise MissingFileError(f"stored file {file_label(name, digest)} is missing from {self.root}")
            if head[0] != size:
                raise CorruptFileError(f"stored file {file_label(name, digest)} is {head[0]} bytes in {self.root}, expected {size}")
            if not _is_etag(stat_sig) or stat_sig == head[1]:
                return None
            # Rewritten since it was stored: only its bytes can tell (the download is checked too).
        import blake3

        hasher = blake3.blake3()
        n = 0
        with self._translated(f"reading {self.describe(digest)}"):
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=self.key_of(digest))["Body"]
            except Exception as exc:  # noqa: BLE001
                if _code(exc) in _MISSING:
                    self._check_bucket()
                    raise MissingFileError(f"stored file {file_label(name, digest)} is missing from {self.root}") from None
                raise
            for chunk in body.iter_chunks(8 << 20):
                hasher.update(chunk)
                n += len(chunk)
        if n != size:
            self.cache.discard(digest)
            raise CorruptFileError(f"stored file {file_label(name, digest)} is {n} bytes in {self.root}, expected {size}: it was truncated or overwritten")
        if hasher.hexdigest() != digest:
            self.cache.discard(digest)
            raise CorruptFileError(f"stored file {file_label(name, digest)} in {self.root} does not match its digest: its content was changed")
        return None

    def damaged_copies(self) -> list[tuple[str, str]]:
        found, self._damaged = self._damaged, []
        return found

    # ------------------------------------------------------------------ listing and deleting

    def listing(self) -> Iterator[tuple[str, int, datetime]]:
        """Every object present: (digest, size, last modified, as the server's clock says)."""
        prefix = self.key_of("00")[: -len("00/")]  # ".../objects/"
        with self._translated(f"listing {self.root}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                for obj in page.get("Contents", ()):
                    rel = obj["Key"][len(prefix):]
                    if len(rel) > 3 and rel[2] == "/":
                        yield rel[:2] + rel[3:], int(obj["Size"]), obj["LastModified"]

    def delete(self, digests: Iterable[str]) -> int:
        digests = list(digests)
        n = 0
        with self._translated(f"deleting from {self.root}"):
            for i in range(0, len(digests), 1000):
                chunk = digests[i : i + 1000]
                resp = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": self.key_of(d)} for d in chunk], "Quiet": True}
                )
                n += len(chunk) - len(resp.get("Errors", ()))
        for d in digests:
            self.cache.discard(d)
        return n

    def copy_in(self, path: Path, digest: str) -> None:
        """Upload the local file (left in place) as object ``digest``: for ``root copy``."""
        with self._translated(f"uploading to {self.describe(digest)}"):
            self.transfer.upload(str(path), self.bucket, self.key_of(digest)).result()

    def close(self) -> None:
        if self._transfer is not None:
            with contextlib.suppress(Exception):
                self._transfer.shutdown()
            self._transfer = None


def _is_etag(sig: str | None) -> bool:
    # Rows copied from a local area hold that area's stat signatures: not comparable.
    return bool(sig) and str(sig).startswith("etag:")


def _local_disk_error(exc: BaseException) -> OSError | None:
    """The local-disk ``OSError`` (no space, quota, read-only, denied) behind a failed transfer, if any."""
    import errno

    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            return e
        e = e.__cause__ or e.__context__
    return None


def _no_answer(exc: BaseException) -> bool:
    """The request got no (complete) answer: connection refused, closed, timed out, cut short."""
    from botocore import exceptions as bx

    return isinstance(exc, (bx.ConnectionError, bx.HTTPClientError))


def _code(exc: BaseException) -> str:
    resp = getattr(exc, "response", None)
    if isinstance(resp, dict):
        err = resp.get("Error") or {}
        code = str(err.get("Code") or "")
        if code:
            return code
        status = (resp.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        return str(status or "")
    cause = exc.__cause__ or exc.__context__
    if cause is not None and cause is not exc:
        return _code(cause)
    return ""


#: Seconds without a byte from the server before a request is retried; a server that stopped
#: (paused, or a dead peer whose connection stays open) is otherwise waited for this long times
#: every attempt. S3 answers an uploaded part at once and streams downloads, so 20 s is ample.
#: ``$CKPTSTORE_S3_READ_TIMEOUT`` changes it (1 to 60: gc's deletion deadline assumes at most 60).
READ_TIMEOUT = 20.0


def read_timeout() -> float:
    text = os.environ.get("CKPTSTORE_S3_READ_TIMEOUT")
    if not text:
        return READ_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        raise StoreConfigError(f"CKPTSTORE_S3_READ_TIMEOUT must be a number of seconds, not {text!r}") from None
    return min(max(value, 1.0), 60.0)


def _make_client() -> Any:
    """A client configured only from the AWS environment of this host, with retries."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise StoreConfigError("an s3:// root needs boto3: pip install boto3 (ckptstore's 's3' extra)") from None
    attempts = int(os.environ.get("AWS_MAX_ATTEMPTS") or 6)
    mode = os.environ.get("AWS_RETRY_MODE") or "standard"
    cfg = Config(
        retries={"mode": mode, "max_attempts": attempts},
        max_pool_connections=CONCURRENCY * 2,
        connect_timeout=10,
        read_timeout=read_timeout(),
    )
    try:
        return boto3.session.Session().client("s3", config=cfg)
    except Exception as exc:  # noqa: BLE001 - a bad profile, region, endpoint
        raise StoreConfigError(f"cannot set up the S3 client: {redact(str(exc))}") from None
