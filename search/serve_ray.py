"""``search serve --index DIR --ray ADDRESS|local``: a sharded index served by Ray Serve.

One deployment per shard (``shard-000``, …; ``--replicas`` replicas each) holds that shard's keyword
index and vectors and answers the calls a search fans out (:class:`~search.fanout.ShardSides`: the
global BM25 statistics, query syntax scored with the statistics of every shard). The router
deployment holds the model and every shard's chunk table and documents: it embeds the query, asks
every shard at once (:class:`RayFanout`), merges, and builds the passages, with the same
:class:`~search.searcher.Searcher` and the same FastAPI app as ``search serve``, so the answers
equal one index's and the HTTP API and the page are today's. A shard that does not answer (its
replica died and Ray is starting another) fails the request with a 503 naming it; a list with a
shard missing is never returned.

Each call carries the generation the router opened. A replica opens that generation of its shard
when first asked for it (after ``search index`` committed a newer one the router reopens, like
``search serve``) and keeps the last two open.

Ray is an optional extra; nothing else imports this module.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .distributed import RayCluster, worker_env
from .errors import IndexFormatError, SearchError, ServeError
from .fanout import LocalFanout, ShardSides
from .holder import IndexHolder
from .index import Index
from .locks import pin_generation, unpin
from .manifest import Manifest
from .serve import create_app, listen
from .sharded import ShardedIndex
from .shards import GlobalStats, ShardsManifest, is_sharded, shard_name

SHARD_TIMEOUT_S = 30.0  # a shard that has not answered by then is taken as gone
KEEP_GENERATIONS = 2  # generations a replica keeps open: the router's and the one it is moving to
APP = "search"


class ShardUnavailableError(ServeError):
    """A shard did not answer (503 from the API, like a damaged index)."""


@dataclass(frozen=True)
class ShardKey:
    """Which generation of a shard a call is for: the global generation, its statistics file and
    the shard's manifest as ``shards.json`` named them when the router opened it."""

    generation: int
    stats: str
    manifest: Manifest


def _bind_to_node_address() -> None:
    """Ray Serve 2.60 starts each replica's inter-deployment gRPC server on every interface
    (``"[::]:0"`` in serve/_private/replica.py); bind it to this node's own address instead, the one
    the other nodes reach it by (127.0.0.1 on a loopback cluster). Called from the replica's
    constructor, which Ray Serve runs before it starts that server."""
    import ray
    from ray.serve._private import replica

    original = replica.add_port_to_grpc_server
    if getattr(original, "bound_to_node", False):
        return
    ip = ray.util.get_node_ip_address()
    host = f"[{ip}]" if ":" in ip else ip

    def bound(server: Any, address: str) -> Any:
        return original(server, address.replace("[::]:", f"{host}:", 1))

    bound.bound_to_node = True  # type: ignore[attr-defined]
    replica.add_port_to_grpc_server = bound


class ShardReplica:
    """One replica of one shard's deployment: the shard opened at the generations asked for."""

    def __init__(self, folder: str, shard: int) -> None:
        _bind_to_node_address()
        self.folder, self.shard = Path(folder), shard
        self._open: OrderedDict[int, ShardSides] = OrderedDict()
        self._lock = threading.Lock()
        sharded = ShardsManifest.read(self.folder)  # open and load now, not in the first request
        self._sides(ShardKey(sharded.generation, sharded.stats, sharded.shards[shard]))

    def _sides(self, key: ShardKey) -> ShardSides:
        with self._lock:
            if key.generation in self._open:
                self._open.move_to_end(key.generation)
                return self._open[key.generation]
            gen = self.folder / shard_name(self.shard) / key.manifest.generation
            pin = pin_generation(gen)
            if pin is None:
                raise IndexFormatError(f"{gen}: the generation asked for is gone; the router reopens the index")
            try:
                index = Index(gen.parent, key.manifest, pin=pin, encoder_threads=1)
            except BaseException:
                unpin(pin)
                raise
            sides = ShardSides(index, GlobalStats.load(self.folder / key.stats))
            index.vectors, index.doc_vectors  # noqa: B018 -- loaded now, not in a request
            self._open[key.generation] = sides
            while len(self._open) > KEEP_GENERATIONS:
                self._open.popitem(last=False)[1].close()
            return sides

    def ask(self, key: ShardKey, side: str, method: str, args: tuple[Any, ...]) -> Any:
        return self._sides(key).ask(side, method, args)

    def pid(self) -> int:
        return os.getpid()


class RayFanout:
    """The shards' deployments, asked at once; each answer awaited at most ``SHARD_TIMEOUT_S``."""

    def __init__(self, handles: list[Any], sharded: ShardsManifest) -> None:
        if len(handles) != len(sharded.shards):
            raise ShardUnavailableError(
                f"the index now has {len(sharded.shards)} shards, the server {len(handles)}: restart `search serve`"
            )
        self.handles = handles
        self.count = len(handles)
        self.local = False  # each call is a round trip: a query's candidates come in one (search/candidates.py)
        self.keys = [ShardKey(sharded.generation, sharded.stats, m) for m in sharded.shards]

    def ask(self, side: str, method: str, calls: dict[int, tuple[Any, ...]]) -> dict[int, Any]:
        pending = {i: self.handles[i].ask.remote(self.keys[i], side, method, args) for i, args in calls.items()}
        return {i: _answer(i, response) for i, response in pending.items()}

    def close(self) -> None:
        pass


def _answer(shard: int, response: Any) -> Any:
    try:
        return response.result(timeout_s=SHARD_TIMEOUT_S)
    except Exception as exc:
        cause = getattr(exc, "cause", None)  # what the shard itself raised, wrapped by Ray
        if isinstance(cause, SearchError):
            raise cause from None
        said = (str(exc).strip().splitlines() or [""])[-1][:200]
        raise ShardUnavailableError(
            f"{shard_name(shard)} did not answer ({type(exc).__name__}: {said}); a replica that died is restarted: "
            "try again"
        ) from None


class Router:
    """The router deployment's replica: the index opened with the shards asked through Ray Serve,
    and ``search serve``'s app over it (built by Ray Serve once this constructor has run)."""

    async def __init__(self, folder: str, model: str | None, shards: list[Any]) -> None:  # type: ignore[misc]
        _bind_to_node_address()
        # Ray Serve awaits an async constructor (serve/api.py). The opening runs in a thread: it warms the
        # index with a search, whose calls to the shards wait on their answers, which Ray Serve does not
        # allow on the replica's event loop
        self.holder = await asyncio.to_thread(
            IndexHolder, folder, model=model, remote=lambda _folder, sharded: RayFanout(shards, sharded)
        )

    def __serve_build_asgi_app__(self) -> Any:
        return create_app(self.holder)

    def pid(self) -> int:
        return os.getpid()

    def __del__(self) -> None:
        holder = getattr(self, "holder", None)
        if holder is not None:
            holder.close()


def application(folder: Path, shards: int, replicas: int, model: str | None = None) -> Any:
    """The Ray Serve application: a deployment per shard and the router (Ray must be connected)."""
    import ray
    from ray import serve

    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    env = {"env_vars": worker_env()}
    # every replica fits: at most one CPU each (one ONNX and one faiss thread), less when shards x replicas
    # outnumber the cluster's CPUs; the router mostly waits on the shards
    per_replica = min(1.0, cpus / (shards * replicas)) if cpus else 0.0
    shard: Any = serve.deployment(ShardReplica)
    bound = [
        shard.options(
            name=shard_name(i),
            num_replicas=replicas,
            ray_actor_options={"num_cpus": per_replica, "runtime_env": env},
            health_check_period_s=2,
        ).bind(str(folder), i)
        for i in range(shards)
    ]
    router: Any = serve.deployment(serve.ingress()(Router))
    return router.options(name="router", ray_actor_options={"num_cpus": 0, "runtime_env": env}).bind(
        str(folder), model, bound
    )


def _check(folder: Path, model: str | None) -> int:
    """The index opened as the router will open it (manifests, generations, the model's fit),
    so that a bad folder is one line here rather than a failed deployment; its shard count."""
    if not is_sharded(folder):
        raise ServeError(f"{folder} is not sharded: --ray serves a sharded index (search index … --shards N)")
    # the model named, or the index's own: resolved and checked against the index, not loaded
    model = model or ShardsManifest.read(folder).shards[0].model.name
    ix = ShardedIndex.open_sharded(folder, model=model, remote=lambda _f, _s: LocalFanout([]))
    ix.close()
    return len(ix.shards)


def _port(host: str, port: int) -> int:
    """``port``, or a free one for 0, after checking it can be listened on (one line if not)."""
    sock = listen(host, port)
    try:
        return int(sock.getsockname()[1])
    finally:
        sock.close()


def serve_on_ray(
    folder: str | Path,
    address: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    replicas: int = 1,
    model: str | None = None,
    ready: Callable[[str, int], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Deploy the sharded index on the cluster at ``address`` (``local``: one started here on
    127.0.0.1 and stopped afterwards), serve until interrupted (or ``stop`` is set), then take the
    application down. ``ready`` gets the page's URL and the shard count once every replica is up."""
    folder = Path(folder)
    shards = _check(folder, model)
    port = _port(host, port)
    stop = stop or threading.Event()
    with RayCluster(address):
        from ray import serve

        serve.start(http_options={"host": host, "port": port}, proxy_location="HeadOnly")  # one proxy, on this port
        try:
            try:
                serve.run(application(folder, shards, replicas, model), name=APP, route_prefix="/", blocking=False)
            except RuntimeError as exc:  # a replica's constructor failed; Ray's message is pages long
                raise ServeError(f"the deployment failed: {_reason(str(exc))}") from None
            if ready:
                ready(f"http://{f'[{host}]' if ':' in host else host}:{port}/", shards)
            _wait(stop)
        finally:
            serve.delete(APP)  # its replicas first, so that shutting Serve down has nothing left to wait for
            serve.shutdown()


def _reason(message: str) -> str:
    """The line of a failed deployment's message that says why: the engine's own error where a replica
    raised one, else Ray's last line."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    ours = [line for line in lines if line.startswith("search.") and "Error: " in line]
    if ours:
        return ours[-1].split("Error: ", 1)[1]
    return lines[-1] if lines else "(no message)"


def _wait(stop: threading.Event) -> None:
    """Until ``stop`` is set or the process is told to stop (Ctrl+C, SIGTERM)."""
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
    else:
        stop.wait()


__all__ = ["RayFanout", "ShardReplica", "ShardUnavailableError", "application", "serve_on_ray"]
