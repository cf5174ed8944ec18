"""The streaming core shared by the audio and token datamodules.

``ShardStream`` is an ``IterableDataset`` that reads WebDataset tars and yields ready batches:

- training: every (rank, worker) draws shards with replacement from its own RNG (seeded by
  seed, epoch, the global step the stream started at, rank and worker), so streams never run
  dry and a resumed run does not replay the batches it saw before the interruption; each rank
  draws from its own disjoint share of the shards whenever there are at least as many shards as
  ranks; every stream yields a fixed number of batches;
  the rank's workers together yield exactly ``batches_per_epoch``, the same on every rank, so
  DDP never waits on a rank that ran out of data;
- validation: the sorted shard list is split by rank, then by worker, so each shard is read
  exactly once per pass across ranks x workers, in a fixed order; with fewer shards than ranks
  every rank reads them all and keeps every world-th sample (each sample still used once).

A sample that fails to read or decode is skipped, logged and counted in a counter shared with
the DataLoader workers, never fatal.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import random
from multiprocessing.context import get_spawning_popen
from typing import Any, Callable, Iterator

import lightning as L
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from soundstage.errors import SoundstageError

from .remote import RemoteShardError

log = logging.getLogger("soundstage.data")
DEFAULT_BATCHES_PER_EPOCH = 1000  # remote shards with no index and no batches_per_epoch


class ShardReadError(SoundstageError, RuntimeError):
    """Training shards that yield no sample at all (missing URLs, empty or unreadable tars)."""


class SharedInt:
    """An integer in shared memory: DataLoader workers (fork or spawn, persistent or not) and spawned DDP
    ranks see the parent's updates. A plain copy (deepcopy, ...) gets its own, from the current value."""

    def __init__(self, value: int = 0) -> None:
        self._value = mp.get_context("spawn").Value("l", value)

    def __getstate__(self) -> dict[str, Any]:
        if get_spawning_popen() is None:  # plain pickling: the copy counts on its own
            return {"value": self.value}
        return {"shared": self._value}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._value = state["shared"] if "shared" in state else mp.get_context("spawn").Value("l", state["value"])

    @property
    def value(self) -> int:
        return int(self._value.value)

    @value.setter
    def value(self, value: int) -> None:
        self._value.value = value

    def add(self, n: int = 1) -> int:
        """Add ``n`` atomically; the new value."""
        with self._value.get_lock():
            self._value.value += n
            return int(self._value.value)


class SkipCounter:
    """Counts skipped (corrupt) samples across DataLoader worker processes; warns for the first few."""

    def __init__(self, warn_first: int = 10) -> None:
        self._count = SharedInt()
        self.warn_first = warn_first

    @property
    def count(self) -> int:
        return self._count.value

    def reset(self) -> None:
        self._count.value = 0

    def __call__(self, exn: Exception) -> bool:
        """A webdataset handler: record the error and continue (returns True); an unreachable URL is fatal."""
        if isinstance(exn, RemoteShardError):
            raise exn
        n = self._count.add()
        if n <= self.warn_first or n % 1000 == 0:
            log.warning("skipping corrupt sample (%d skipped so far): %s: %s", n, type(exn).__name__, exn)
        return True


def worker_split() -> tuple[int, int]:
    """(worker id, number of workers) of the current DataLoader worker, (0, 1) in the main process."""
    info = get_worker_info()
    return (info.id, info.num_workers) if info is not None else (0, 1)


class ShardStream(IterableDataset):
    """Batches from WebDataset shards; ``decode(sample, rng)`` makes an item (or raises), ``collate`` a batch.

    ``rng`` is a ``random.Random`` for training crops and ``None`` in validation (deterministic).
    """

    def __init__(
        self,
        urls: list[str],
        decode: Callable[[dict[str, Any], random.Random | None], Any],
        collate: Callable[[list[Any]], dict[str, Any]],
        batch_size: int,
        skipped: SkipCounter,
        *,
        train: bool,
        batches_per_epoch: int = 1,
        shuffle_buffer: int = 256,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
    ) -> None:
        super().__init__()
        if batch_size < 1:  # a zero batch would never fill: the stream would spin forever
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.urls = list(urls) if train else sorted(urls)
        self.decode, self.collate = decode, collate
        self.batch_size = batch_size
        self.skipped = skipped
        self.train = train
        self.batches_per_epoch = batches_per_epoch
        self.shuffle_buffer = shuffle_buffer
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.start_step = start_step  # the trainer's global step when this stream was made (resume)
        self._epoch = SharedInt()  # bumped by EpochDataLoader on every pass; its (persistent) workers read it

    @property
    def epoch(self) -> int:
        return self._epoch.value

    @epoch.setter
    def epoch(self, value: int) -> None:
        self._epoch.value = value

    def __len__(self) -> int:
        if not self.train:
            raise TypeError("the validation stream has no fixed length")
        return self.batches_per_epoch

    # --- shard selection --------------------------------------------------------------------
    def train_shards(self) -> list[str]:
        """The shards this rank draws from: a disjoint share when there are enough shards."""
        if len(self.urls) >= self.world_size:
            return self.urls[self.rank :: self.world_size]
        if self.rank == 0:
            log.warning("%d training shards for %d ranks: ranks share shards (write more, smaller shards)",
                        len(self.urls), self.world_size)
        return self.urls

    def _resampled_urls(self, rng: random.Random) -> Iterator[dict[str, str]]:
        urls = self.train_shards()
        while True:
            yield {"url": rng.choice(urls)}

    def val_shards(self, rank: int, world_size: int, worker: int, num_workers: int) -> list[str]:
        """The validation shards read by ``worker`` of ``rank`` (disjoint, together all shards).

        With fewer shards than ranks every rank reads all of them and keeps every ``world_size``-th
        sample (``_val_batches``), so no rank is left without data: a rank that validates on nothing
        never joins the metric all-gather at the end of validation and DDP hangs.
        """
        if len(self.urls) < world_size:
            return self.urls[worker::num_workers]
        return self.urls[rank::world_size][worker::num_workers]

    # --- iteration ----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker, num_workers = worker_split()
        if self.train:
            yield from self._train_batches(worker, num_workers)
        else:
            yield from self._val_batches(worker, num_workers)

    def _items(self, url_dicts, rng: random.Random | None, stride: int = 1, offset: int = 0) -> Iterator[Any]:
        for i, sample in enumerate(wds.tarfile_samples(url_dicts, handler=self.skipped)):
            if i % stride != offset:  # another rank's sample (ranks sharing validation shards)
                continue
            try:
                item = self.decode(sample, rng)
            except Exception as exc:  # a corrupt member: skip and count, never fatal
                self.skipped(ValueError(f"{sample.get('__url__', '?')}: {sample.get('__key__', '?')}: {exc}"))
                continue
            if item is not None:
                yield item

    def _train_batches(self, worker: int, num_workers: int) -> Iterator[dict[str, Any]]:
        # Split the rank's fixed batch count over its workers; the DataLoader interleaves them.
        n = self.batches_per_epoch // num_workers + (worker < self.batches_per_epoch % num_workers)
        if n == 0:
            return
        rng = random.Random(f"{self.seed}-{self.epoch}-{self.start_step}-{self.rank}-{worker}")  # str seeds are stable
        if self.epoch <= 1:  # once per stream: which shards this rank draws from (checks the split on a cluster)
            log.info("rank %d/%d worker %d/%d draws training samples from %s", self.rank, self.world_size, worker,
                     num_workers, " ".join(self.train_shards()))
        state = {"items": 0}
        items = self._items(self._guarded(self._resampled_urls(rng), state), rng)
        buffer: list[Any] = []
        batch: list[Any] = []
        made = 0
        for item in items:
            state["items"] += 1
            # Sample shuffle buffer: emit a random element once the buffer is full.
            buffer.append(item)
            if len(buffer) < max(self.shuffle_buffer, 1):
                continue
            batch.append(buffer.pop(rng.randrange(len(buffer))))
            if len(batch) == self.batch_size:
                yield self.collate(batch)
                batch, made = [], made + 1
                if made == n:
                    return

    def _guarded(self, url_dicts: Iterator[dict[str, str]], state: dict[str, int]) -> Iterator[dict[str, str]]:
        """Stop a training stream that cannot produce anything instead of spinning forever."""
        for i, url in enumerate(url_dicts):
            if i >= 4 * len(self.urls) + 8 and state["items"] == 0:
                raise ShardReadError(
                    f"no readable samples in {len(self.urls)} training shards (e.g. {self.urls[0]}); "
                    f"{self.skipped.count} read errors so far, the first ones are logged above"
                )
            yield url

    def _val_batches(self, worker: int, num_workers: int) -> Iterator[dict[str, Any]]:
        urls = self.val_shards(self.rank, self.world_size, worker, num_workers)
        stride = self.world_size if len(self.urls) < self.world_size else 1  # ranks share the shards: split samples
        batch: list[Any] = []
        for item in self._items(({"url": u} for u in urls), None, stride, self.rank % stride):
            batch.append(item)
            if len(batch) == self.batch_size:
                yield self.collate(batch)
                batch = []
        if batch:
            yield self.collate(batch)


class EpochDataLoader(DataLoader):
    """A DataLoader over a ``ShardStream`` that advances the stream's epoch on every pass."""

    def __iter__(self):
        self.dataset.epoch += 1  # in shared memory, before the workers are asked for the pass: they see it
        return super().__iter__()


def make_loader(stream: ShardStream, num_workers: int, pin_memory: bool, prefetch_factor: int) -> DataLoader:
    """DataLoader for a batch-yielding stream (batching happens in the workers).

    Workers persist across epochs instead of being forked from the training process again for every
    pass (twice an epoch with validation); each pass still starts a fresh stream in every worker
    (``benchmarks/data_loader.py --restarts``: 0.11 s to the first batch of an epoch against 0.19 s)."""
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs.update(prefetch_factor=prefetch_factor, persistent_workers=True)
    return EpochDataLoader(
        stream, batch_size=None, num_workers=num_workers, pin_memory=pin_memory and torch.cuda.is_available(),
        **kwargs,
    )


class ShardDataModule(L.LightningDataModule):
    """What the audio and token datamodules share: shard specs, loader settings, rank, skip counter."""

    def __init__(
        self,
        train_shards: str,
        val_shards: str | None,
        batch_size: int,
        num_workers: int = 0,
        batches_per_epoch: int | None = None,
        shuffle_buffer: int = 256,
        seed: int = 0,
        pin_memory: bool = False,
        prefetch_factor: int = 2,
    ) -> None:
        super().__init__()
        self.train_shards, self.val_shards = train_shards, val_shards
        self.batch_size = batch_size
        self.num_workers, self.pin_memory, self.prefetch_factor = num_workers, pin_memory, prefetch_factor
        self.batches_per_epoch, self.shuffle_buffer, self.seed = batches_per_epoch, shuffle_buffer, seed
        self.rank: int | None = None  # set both to simulate a rank without a Trainer
        self.world_size: int | None = None
        self.skipped = SkipCounter()

    @property
    def num_skipped(self) -> int:
        """Corrupt samples skipped so far (all workers, this process)."""
        return self.skipped.count

    def train_batches_per_epoch(self, urls: list[str], world_size: int) -> int:
        """``batches_per_epoch`` if set, else one pass over the samples the shard index counts."""
        if self.batches_per_epoch is not None:
            return int(self.batches_per_epoch)
        from .shards import count_samples

        total = count_samples(urls)
        if total is None:
            log.warning("remote training shards and no batches_per_epoch given; using %d", DEFAULT_BATCHES_PER_EPOCH)
            return DEFAULT_BATCHES_PER_EPOCH
        return max(1, total // (self.batch_size * world_size))

    def loader(self, stream: ShardStream) -> DataLoader:
        """The DataLoader for one of this datamodule's streams."""
        return make_loader(stream, self.num_workers, self.pin_memory, self.prefetch_factor)


def start_step(datamodule: Any) -> int:
    """The attached trainer's global step (restored from the checkpoint when resuming), else 0."""
    trainer = getattr(datamodule, "trainer", None)
    return int(trainer.global_step) if trainer is not None else 0


def rank_and_world(datamodule: Any) -> tuple[int, int]:
    """The process's (global rank, world size): explicit override, attached Trainer, torch.distributed."""
    if getattr(datamodule, "rank", None) is not None:
        return int(datamodule.rank), int(datamodule.world_size or 1)
    trainer = getattr(datamodule, "trainer", None)
    if trainer is not None:
        return int(trainer.global_rank), int(trainer.world_size)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1
