"""The embedding of a sharded build on a Ray cluster (``search index … --shards N --ray ADDRESS|local``).

Ray is an optional extra (``pip install -e '.[distributed]'``); nothing else imports this module.
The driver plans every batch exactly as one process would (:meth:`OnnxEncoder.passage_batches`),
so the vectors are bitwise equal to a one-machine build: dynamic int8 scales activations per batch,
and the same texts in other batches give cosines as low as 0.993. Each batch of token ids goes to
a worker actor holding the ONNX model with one thread per CPU it was given; the results come back
in order. The embedding cache, where on, is read and written here, by the driver, through
:meth:`~search.embcache.CachedEncoder.through`, in the steps it takes.

Before the vectors, reading the files, detecting the new documents' languages and splitting them
into sentences run as Ray Data tasks on the workers (:meth:`RayRunner.read`, ``languages``,
``sentences``: the :class:`~search.prepare.Prepare` stages), each task a group of files or
documents, the results put back in corpus order: the same documents and sentences as here.

``local`` starts a cluster on 127.0.0.1 (its GCS, raylet and object store; no dashboard, no usage
statistics) with every core of this machine, and stops it afterwards. An address joins a running
cluster (``ray start --head`` on one machine, ``ray start --address`` on the others); the index
folder and the model cache must be on storage every node sees.
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from .chunking import Span
from .corpus import FileRead, kind_of, read_file
from .embcache import CachedEncoder
from .encoder import Encoder, OnnxEncoder
from .errors import SearchError
from .prepare import HERE, Advance
from .types import Document

LOCAL = "local"
CONNECT_SECONDS = 5.0
INFLIGHT_PER_WORKER = 2  # calls queued per worker: enough to keep it busy, few enough to stay in memory
BATCHES_PER_CALL = 1  # model batches sent in one call (each still run on its own, so its vectors stay the same)
QUIET: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}  # our output stays ours
TASKS_PER_WORKER = 4  # Ray Data tasks per worker CPU for reading and splitting: enough to even out their sizes
MAX_PER_TASK = {"read": 64, "languages": 1000, "sentences": 500}  # files or documents in one task, at most


class RayError(SearchError):
    """Ray is missing, or the cluster cannot be reached (exit 1)."""


def _quiet_env() -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # Ray otherwise tries to send usage statistics out


def _reachable(address: str) -> None:
    """Fail in seconds with one line, where ``ray.init`` would retry an unreachable address for minutes."""
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise RayError(f"--ray {address!r}: expected host:port, ray://host:port or {LOCAL!r}")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as exc:
        raise RayError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc})") from None


class RayCluster:
    """A connection to a Ray cluster: ``with RayCluster("local"): …``. ``local`` starts one on
    127.0.0.1 with every core of this machine and stops it, by its own handle, on the way out;
    an address joins a running cluster (checked to answer within seconds first)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._started = False
        self._cluster: Any = None  # the cluster `local` started

    def __enter__(self) -> Self:
        _quiet_env()
        if self.address == LOCAL:
            # every node address on loopback (Ray's default is the machine's outward address); Ray reads
            # this when it is first imported
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        try:
            import ray
        except ImportError:
            raise RayError("--ray needs Ray: pip install -e '.[distributed]'") from None
        if self.address != LOCAL:
            _reachable(self.address)
        if ray.is_initialized():  # the caller (a test, a notebook) is connected already
            return self
        if self.address == LOCAL:
            from ray.cluster_utils import Cluster

            # one node with every core, each of its servers on 127.0.0.1, stopped by this handle
            self._cluster = Cluster(
                initialize_head=True,
                head_node_args={
                    "num_cpus": os.cpu_count() or 1,
                    "node_ip_address": "127.0.0.1",
                    "include_dashboard": False,
                },
            )
            ray.init(address=self._cluster.address, _node_ip_address="127.0.0.1", **QUIET)
        else:
            ray.init(address=self.address, **QUIET)
        self._started = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False
        if self._cluster is not None:
            self._cluster.shutdown()
            self._cluster = None


def worker_env() -> dict[str, str]:
    """What a worker process needs of this one's environment: the engine's settings and the cache."""
    return {k: v for k, v in os.environ.items() if k.startswith("SEARCH_") or k in ("XDG_CACHE_HOME", "HOME")}


class RayRunner(RayCluster):
    """A connection to a Ray cluster for one build: ``with RayRunner("local") as r: r.embed(…)``."""

    def __init__(self, address: str, workers: int | None = None) -> None:
        super().__init__(address)
        self.batches_per_call = BATCHES_PER_CALL
        self.max_workers = workers  # embed on at most this many of the actors (default: all, one per CPU)
        self.workers: list[Any] = []  # the embedding actors, kept from one call to the next
        self._model = ""
        self.processes: set[int] = set()  # the worker processes that ran reading and splitting tasks

    def read(self, files: list[Path], base: Path, advance: Advance | None = None) -> list[FileRead]:
        """Each file read on a worker (the corpus on storage every node sees), in the order given; a
        JSONL file is read here: it has no size limit, and its parsing is quick."""
        here = [i for i, f in enumerate(files) if kind_of(f) == "jsonl"]
        remote = [i for i, f in enumerate(files) if kind_of(f) != "jsonl"]
        done = dict(zip(remote, self._tasks("read", [(files[i], base) for i in remote], advance), strict=True))
        done.update(zip(here, HERE.read([files[i] for i in here], base, advance), strict=True))
        return [done[i] for i in range(len(files))]

    def languages(self, texts: list[str], advance: Advance | None = None) -> list[str]:
        return self._tasks("languages", texts, advance)

    def sentences(self, docs: list[Document]) -> list[list[Span]]:
        return self._tasks("sentences", docs)

    def _tasks(self, stage: str, items: list[Any], advance: Advance | None = None) -> list[Any]:
        """``stage`` of :data:`~search.prepare.HERE` over ``items`` as Ray Data tasks, each a group of
        them (one block, one task), the results back in order; ``advance(n)`` as each group is done."""
        if not items:
            return []
        import ray
        import ray.data

        if self.workers:  # they hold every CPU: the tasks would wait for them forever
            self._stop_workers()
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # its plans and notes would go to our stderr
        ray.data.DataContext.get_current().enable_progress_bars = False  # the build shows its own
        cpus = int(ray.cluster_resources().get("CPU", 0)) or 1
        size = min(MAX_PER_TASK[stage], -(-len(items) // (cpus * TASKS_PER_WORKER)))
        groups = [pickle.dumps(items[lo : lo + size]) for lo in range(0, len(items), size)]
        ds = ray.data.from_items([{"i": i, "items": g} for i, g in enumerate(groups)], override_num_blocks=len(groups))
        env = {"env_vars": worker_env()}  # the engine's settings (the readers' limits) on every node
        run = ds.map_batches(
            functools.partial(_stage, stage=stage), batch_size=1, batch_format="numpy", runtime_env=env
        )
        done: dict[int, list[Any]] = {}
        for row in run.iter_rows():  # as each task finishes, for the progress bar
            done[int(row["i"])] = part = pickle.loads(row["out"])
            self.processes.add(int(row["pid"]))
            if advance:
                advance(len(part))
        return [x for i in range(len(groups)) for x in done[i]]

    def __exit__(self, *exc: object) -> None:
        if self.workers:
            self._stop_workers()
        super().__exit__(*exc)

    def embed(self, encoder: Encoder, texts: list[str], progress: Callable[[int], None] | None) -> np.ndarray:
        """``encoder.encode_passages(texts)``, bitwise, with the batches run on the cluster's workers."""
        cache = encoder if isinstance(encoder, CachedEncoder) else None
        model = cache.encoder if cache is not None else encoder
        if not isinstance(model, OnnxEncoder):  # a model without an int8 export runs here, as it would
            return encoder.encode_passages(texts, progress)
        if cache is None:
            return self._run(model, texts, progress)
        return cache.through(texts, progress, lambda part, advance: self._run(model, part, advance))

    def _run(self, model: OnnxEncoder, texts: Sequence[str], progress: Callable[[int], None] | None) -> np.ndarray:
        import ray

        out = np.zeros((len(texts), model.dim), dtype=np.float32)
        if not texts:
            return out
        workers = self._workers(model)
        workers = workers[: self.max_workers or len(workers)]
        # a call under way -> its worker and the rows of each of its batches; the next call goes to the
        # worker with the fewest calls under way (one sharing its core with this driver finishes fewer)
        pending: dict[Any, tuple[int, list[list[int]]]] = {}
        load = [0] * len(workers)
        group: list[tuple[list[int], list[list[int]]]] = []
        for planned in [*model.passage_batches(texts), None]:
            if planned is not None:
                group.append(planned)
            if group and (planned is None or len(group) == self.batches_per_call):
                while min(load) >= INFLIGHT_PER_WORKER:
                    self._collect(pending, load, out, progress, ray, block=1)
                w = load.index(min(load))
                pending[workers[w].run_many.remote([batch for _, batch in group])] = (w, [rows for rows, _ in group])
                load[w] += 1
                group = []
        self._collect(pending, load, out, progress, ray, block=len(pending))
        return out

    def _workers(self, model: OnnxEncoder) -> list[Any]:
        """The embedding actors, one per CPU of the cluster, started on first use and kept for this
        runner's later calls."""
        import ray

        count = int(ray.cluster_resources().get("CPU", 0)) or 1
        if not self.workers or self._model != model.fingerprint:
            self._stop_workers()
            env = worker_env()
            # a worker that dies is restarted and its batches run again: they give the same vectors
            worker = ray.remote(num_cpus=1, max_restarts=3, max_task_retries=3, runtime_env={"env_vars": env})(_Worker)
            self.workers = [worker.remote(model.ref) for _ in range(count)]
            self._model = model.fingerprint
        return self.workers

    def _stop_workers(self) -> None:
        import ray

        for w in self.workers:
            ray.kill(w)
        self.workers = []

    @staticmethod
    def _collect(
        pending: dict[Any, tuple[int, list[list[int]]]],
        load: list[int],
        out: np.ndarray,
        progress: Callable[[int], None] | None,
        ray: Any,
        block: int,
    ) -> None:
        done, _ = ray.wait(list(pending), num_returns=block)
        for ref in done:
            w, batches = pending.pop(ref)
            load[w] -= 1
            for rows, vectors in zip(batches, ray.get(ref), strict=True):
                out[rows] = vectors
                if progress:
                    progress(len(rows))


def _stage(batch: dict[str, Any], stage: str) -> dict[str, Any]:
    """One Ray Data task: a group of items through one stage of :data:`~search.prepare.HERE`."""
    items = pickle.loads(batch["items"][0])
    out = [read_file(file, base) for file, base in items] if stage == "read" else getattr(HERE, stage)(items)
    return {"i": batch["i"], "out": [pickle.dumps(out)], "pid": [os.getpid()]}


class _Worker:
    """A Ray actor holding the model: one ONNX thread for the one CPU it holds."""

    def __init__(self, ref: Any) -> None:
        self.model = OnnxEncoder(ref, threads=1)

    def run_many(self, batches: list[list[list[int]]]) -> list[np.ndarray]:
        return [self.model.run(batch) for batch in batches]

    def pid(self) -> int:
        return os.getpid()
