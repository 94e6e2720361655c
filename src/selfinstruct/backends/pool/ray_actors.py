"""``--executor ray``: the backend runs in Ray actors, one model copy in each.

Only a run that asks for Ray imports this module, and only this module imports ``ray``.

Each :class:`BackendWorker` actor opens its backend in its own worker process with
:func:`~selfinstruct.backends.registry.open_backend`, exactly as a local run would, with
as many llama.cpp threads as the actor reserves CPUs (one). The driver keeps one
:class:`RayMember` per actor and pools them in a
:class:`~selfinstruct.backends.pool.balanced.BalancedBackend`, so that
:func:`~selfinstruct.backends.requests.run_requests` keeps doing what it does for a local run
(cache on the driver, retries, results in request order) without knowing where the
requests ran. The pool's identity is the one the backend has locally, so a run's cache
serves it whichever executor runs it, and a run may be resumed under the other one.

A worker that dies is restarted by Ray (``max_restarts=-1``); Ray does not re-run the call
it was serving (``max_task_retries=0``). That call fails on the driver with a
``RayActorError``, which :class:`RayMember` turns into a
:class:`~selfinstruct.backends.base.TransientBackendError`: the executor's retry policy
sends the batch again, as it would after a server's 503, and counts the retry in the
manifest. The balancer lets the failed member cool down first, so the batch usually goes
to another actor while the dead one restarts. A request is re-sent rather than lost, and
since a completion depends only on the request, re-sending it changes no output.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Sequence
from typing import cast

from selfinstruct.backends.base import BackendError, Completion, Request, TransientBackendError
from selfinstruct.backends.pool.balanced import BalancedBackend
from selfinstruct.backends.registry import ModelInfo, open_backend
from selfinstruct.errors import UserError

try:
    import ray
    import ray.exceptions as ray_errors
except ImportError as exc:
    if exc.name is None or exc.name.split(".")[0] != "ray":
        raise
    raise UserError("--executor ray needs Ray, which is not installed: "
                    "pip install 'selfinstruct[ray]'") from None

ACTOR_PREFIX = "selfinstruct-worker"
STARTUP_TIMEOUT_SECONDS = 600.0
CPUS_PER_ACTOR = 1
# Failures of the actor or its node, not of the request: worth sending again.
_WORKER_LOST = (ray_errors.RayActorError, ray_errors.WorkerCrashedError,
                ray_errors.ObjectLostError, ray_errors.NodeDiedError)


# Ray's typed overloads of ray.remote lack concurrency_groups, which it accepts
@ray.remote(concurrency_groups={"control": 1})  # type: ignore[call-overload]
class BackendWorker:
    """One backend in one Ray worker process.

    An error while opening it (a missing model file, say) is kept and reported by
    ``describe`` rather than raised, so that the driver can show it as the one-line error
    a local run would give, instead of an actor death."""

    def __init__(self, model: str, options: dict, n_threads: int, driver_cwd: str):
        self.backend = None
        self.info: ModelInfo | None = None
        self.error: str | None = None
        if os.path.isdir(driver_cwd):  # a relative --model path means what it means there
            os.chdir(driver_cwd)  # (this process serves this actor alone)
        try:
            self.backend, self.info = open_backend(model, n_threads=n_threads, **options)
        except UserError as exc:
            self.error = str(exc)

    @ray.method(concurrency_group="control")  # answers even while a batch is running
    def describe(self) -> dict:
        return {
            "pid": os.getpid(),
            "node": ray.get_runtime_context().get_node_id(),
            "error": self.error,
            "identity": self.backend.identity if self.backend is not None else None,
            "model": self.info.as_dict() if self.info is not None else None,
        }

    def complete(self, requests: Sequence[Request]) -> list[Completion]:
        if self.backend is None:  # a restart on a node that cannot open the model
            raise BackendError(self.error or "the backend did not open")
        return self.backend.complete(requests)


class RayMember:
    """The driver's side of one actor: the Backend protocol, over ``ray.get``."""

    def __init__(self, handle, name: str, identity: dict):
        self.handle = handle
        self.name = name
        self._identity = identity

    @property
    def identity(self) -> dict:
        return self._identity

    def complete(self, requests: Sequence[Request]) -> list[Completion]:
        try:
            return ray.get(self.handle.complete.remote(list(requests)))
        except ray_errors.RayTaskError as exc:  # the backend raised, in the worker
            cause = exc.cause
            if isinstance(cause, BackendError):
                raise cause from None
            raise BackendError(f"{self.name}: {type(cause).__name__}: {cause}") from None
        except _WORKER_LOST as exc:
            first_line = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            raise TransientBackendError(
                f"Ray actor {self.name} was lost ({type(exc).__name__}: {first_line})"
            ) from None


class RayPool(BalancedBackend):
    """The actors of one run, pooled; ``close`` ends them (and Ray, if this run started it)."""

    def __init__(self, members: list[RayMember], identity: dict, started_ray: bool):
        super().__init__(members, labels=[m.name for m in members], identity=identity)
        self.started_ray = started_ray

    def close(self) -> None:
        _end([cast(RayMember, member).handle for member in self.members], self.started_ray)
        self.members = []
        self.started_ray = False


def _end(handles: list, started_ray: bool) -> None:
    for handle in handles:
        # an actor already gone, or a cluster already lost, has nothing left to end
        with contextlib.suppress(ray_errors.RayError, ConnectionError, ValueError):
            ray.kill(handle, no_restart=True)
    if started_ray:
        ray.shutdown()


def connect(address: str | None) -> bool:
    """Join the cluster at ``address`` ("auto", "HOST:PORT"); with None, Ray's own rule:
    ``$RAY_ADDRESS``, else the cluster ``ray start`` began on this machine, else a new local
    instance. Returns whether this call initialised Ray: a caller that initialised Ray
    itself (from Python) keeps its own session."""
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f"--ray-address {address}" if address else "--executor ray"
        raise UserError(f"{where}: cannot start or join a Ray cluster ({exc})") from None
    return True


def default_replicas() -> int:
    """One actor per CPU of the cluster (each actor reserves one)."""
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(1, cpus // CPUS_PER_ACTOR)


def open_on_ray(model: str, options: dict, *, address: str | None = None,
                replicas: int = 0) -> tuple[RayPool, ModelInfo]:
    """Start ``replicas`` actors (0: one per CPU), each opening ``open_backend(model,
    **options)``, and pool them. Fails with a :class:`UserError` when an actor cannot open
    its backend, when they disagree on the model, or when they cannot all start."""
    started = connect(address)
    count = replicas or default_replicas()
    if started and address is None and count > default_replicas():
        _end([], started)
        raise UserError(f"--replicas {count}: the Ray instance on this machine has "
                        f"{default_replicas()} CPUs, and each actor needs {CPUS_PER_ACTOR}; "
                        "use fewer replicas, or --ray-address to join a larger cluster")
    token = uuid.uuid4().hex[:8]
    names = [f"{ACTOR_PREFIX}-{token}-{i}" for i in range(count)]
    handles = [
        # ray.remote made BackendWorker an ActorClass, which mypy does not know
        BackendWorker.options(  # type: ignore[attr-defined]
            name=name, num_cpus=CPUS_PER_ACTOR, max_restarts=-1, max_task_retries=0,
            scheduling_strategy="SPREAD")
        .remote(model, options, CPUS_PER_ACTOR, os.getcwd())
        for name in names
    ]
    try:
        descriptions = _wait_started(handles, count)
        identity = _shared_identity(descriptions)
    except BaseException:
        _end(handles, started)
        raise
    members = [RayMember(h, n, identity) for h, n in zip(handles, names)]
    info = ModelInfo(**descriptions[0]["model"])
    return RayPool(members, identity, started), info


def _wait_started(handles: list, count: int) -> list[dict]:
    refs = [h.describe.remote() for h in handles]
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=STARTUP_TIMEOUT_SECONDS)
    if len(ready) < len(refs):
        cpus = int(ray.cluster_resources().get("CPU", 0))
        raise UserError(
            f"--replicas {count}: only {len(ready)} Ray actors started in "
            f"{STARTUP_TIMEOUT_SECONDS:.0f} s (the cluster has {cpus} CPUs, each actor "
            f"needs {CPUS_PER_ACTOR})"
        )
    try:
        descriptions = ray.get(refs)
    except ray_errors.RayError as exc:
        raise UserError(f"--executor ray: a Ray actor failed to start ({exc})") from None
    for description in descriptions:
        if description["error"]:
            raise UserError(description["error"])
    return descriptions


def _shared_identity(descriptions: list[dict]) -> dict:
    identity = descriptions[0]["identity"]
    for description in descriptions[1:]:
        if description["identity"] != identity:
            raise UserError(
                "--executor ray: the Ray workers opened different models "
                f"({identity} on one node, {description['identity']} on another); "
                "give every node the same model file"
            )
    return identity
