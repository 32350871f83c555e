"""Executors: run one function over many items in-process, on the local cores, or on Ray.

``hwsim sweep`` and ``hwsim reproduce`` train many independent points; an :class:`Executor`
decides where each runs. Every executor has the same one call,
:meth:`Executor.map_unordered`, which yields an :class:`Outcome` per item as the items finish
(in any order); the caller, and only the caller, saves the results. Three implementations:

============= ==========================================================================
``local``     one after another, in this process (:class:`LocalExecutor`): an exception
              raised by the function propagates at once, as a plain loop's would
``processes`` a pool of ``workers`` processes on this machine (:class:`ProcessExecutor`,
              started fresh by a fork server or ``spawn``; Ctrl-C ignored in the workers)
``ray``       one Ray task per item on a Ray cluster, a running one at ``address`` or a
              local one started for the command (:class:`RayExecutor`; ``pip install
              'hwsim[ray]'``)
============= ==========================================================================

``processes`` and ``ray`` keep at most ``workers`` items in flight. An item whose function
raises, or whose worker dies (killed, out of memory), is tried again up to ``retries`` more
times; after that its :class:`Outcome` carries the error (never dropped). Closing the
generator (Ctrl-C in the caller, or any exception there) cancels the items not yet finished
and stops the workers running them.

The function and items must pickle (a module-level function; for Ray, the package installed on
every node) and the function must not depend on the caller's state: each worker starts fresh.
As with any ``multiprocessing`` program, a script that uses ``processes`` runs its work under
``if __name__ == "__main__":`` (the workers import the script's module).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from hwsim.core.errors import InputError

__all__ = [
    "DEFAULT_RETRIES",
    "EXECUTORS",
    "RAY_INSTALL_HINT",
    "Executor",
    "FailedPointsError",
    "LocalExecutor",
    "Outcome",
    "ProcessExecutor",
    "RayExecutor",
    "available_cores",
    "make_executor",
]

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS = ("local", "processes", "ray")
#: How a failed item is tried again by default (one more attempt).
DEFAULT_RETRIES = 1
RAY_INSTALL_HINT = "pip install 'hwsim[ray]'"


@dataclass(frozen=True)
class Outcome(Generic[T, R]):
    """How one item ended: its ``result``, or the ``error`` of its last attempt (text)."""

    item: T
    result: R | None = None
    error: str | None = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        """True when the item finished without an error."""
        return self.error is None


class FailedPointsError(Exception):
    """Some items failed on every attempt: ``failures`` is ``[(name, error), ...]``.

    Raised after everything else has finished and been saved, so running the same command again
    runs exactly the failed items.
    """

    def __init__(self, where: str, failures: list[tuple[str, str]]) -> None:
        self.where = where
        self.failures = failures
        listed = "; ".join(f"{name}: {error}" for name, error in failures)
        super().__init__(
            f"{len(failures)} point(s) of {where} failed: {listed}. The finished points are "
            "kept; run the same command again to retry the failed ones"
        )


class Executor(Protocol):
    """Where the points of a sweep run (module docstring)."""

    #: ``local``, ``processes`` or ``ray``.
    name: str
    #: How many items run at once.
    workers: int
    #: Torch threads per worker (``None``: in-process, the caller's setting stands).
    threads: int | None

    def map_unordered(
        self,
        fn: Callable[[T], R],
        items: Iterable[T],
        *,
        on_start: Callable[[T], None] | None = None,
    ) -> Iterator[Outcome[T, R]]:
        """``fn`` on every item; one :class:`Outcome` per item, in the order they finish.

        ``on_start(item)`` is called (in this process) as each attempt is handed out.
        """
        ...

    def close(self) -> None:
        """Release the workers (and a Ray instance this executor started)."""
        ...


def available_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _describe(exc: BaseException) -> str:
    """One line for an exception: its type and message (a Ray error: the cause's)."""
    cause = getattr(exc, "cause", None)  # ray.exceptions.RayTaskError wraps the task's own
    if isinstance(cause, BaseException):
        exc = cause
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class LocalExecutor:
    """One item after another in this process: today's plain loop. Exceptions propagate."""

    name = "local"
    workers = 1
    threads: int | None = None

    def map_unordered(
        self,
        fn: Callable[[T], R],
        items: Iterable[T],
        *,
        on_start: Callable[[T], None] | None = None,
    ) -> Iterator[Outcome[T, R]]:
        """``fn(item)`` for each item in order (see :meth:`Executor.map_unordered`)."""
        for item in items:
            if on_start:
                on_start(item)
            yield Outcome(item, result=fn(item))

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Pooled:
    """The shared loop of the executors with workers: bounded in-flight work, retries, cancel.

    Subclasses say how to submit one call (:meth:`_submit`), wait for some to end
    (:meth:`_wait`), read one's result (:meth:`_result`, raising the task's error) and cancel
    what is still running (:meth:`_cancel`).
    """

    name = "pooled"

    def __init__(self, *, workers: int, threads: int, retries: int) -> None:
        self.workers = workers
        self.threads: int | None = threads
        self.retries = retries

    def map_unordered(
        self,
        fn: Callable[[T], R],
        items: Iterable[T],
        *,
        on_start: Callable[[T], None] | None = None,
    ) -> Iterator[Outcome[T, R]]:
        """See :meth:`Executor.map_unordered`."""
        queue: deque[tuple[int, T]] = deque(enumerate(items))
        attempts: dict[int, int] = {}
        running: dict[Any, tuple[int, T]] = {}
        try:
            while queue or running:
                while queue and len(running) < self.workers:
                    index, item = queue.popleft()
                    attempts[index] = attempts.get(index, 0) + 1
                    if on_start:
                        on_start(item)
                    running[self._submit(fn, item)] = (index, item)
                for handle in self._wait(list(running)):
                    index, item = running.pop(handle)
                    try:
                        value = self._result(handle)
                    except Exception as exc:
                        if attempts[index] <= self.retries:
                            queue.appendleft((index, item))  # next in line, before new items
                        else:
                            yield Outcome(item, error=_describe(exc), attempts=attempts[index])
                        continue
                    yield Outcome(item, result=value, attempts=attempts[index])
        finally:
            if running:
                self._cancel(list(running))

    def _submit(self, fn: Callable[[Any], Any], item: Any) -> Any:
        raise NotImplementedError

    def _wait(self, handles: list[Any]) -> list[Any]:
        raise NotImplementedError

    def _result(self, handle: Any) -> Any:
        raise NotImplementedError

    def _cancel(self, handles: list[Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the workers."""

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ignore_sigint() -> None:
    """Worker initializer: Ctrl-C is the driver's to handle (it stops the workers)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _default_start_method() -> str:
    import multiprocessing

    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


class ProcessExecutor(_Pooled):
    """``workers`` processes on this machine, started fresh: never forked from this process
    (which may hold torch's threads). ``forkserver`` where there is one (Linux): a server
    process imports the function's module once (the first function this process hands to an
    executor) and forks every worker from it, so a new pool starts in a fraction of a second
    instead of each worker importing torch; ``spawn`` elsewhere.

    A worker that dies breaks the whole pool: every item then in flight counts one attempt and
    is handed to a new pool (with ``retries`` ≥ 1 the others simply run again).
    """

    name = "processes"

    def __init__(
        self, *, workers: int, threads: int, retries: int, start_method: str | None = None
    ) -> None:
        super().__init__(workers=workers, threads=threads, retries=retries)
        self.start_method = start_method or _default_start_method()
        self._pool: ProcessPoolExecutor | None = None

    def _get_pool(self, fn: Callable[[Any], Any]) -> ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing

            context = multiprocessing.get_context(self.start_method)
            if self.start_method == "forkserver":
                # Only the first call in a process counts: the server then runs until it exits.
                context.set_forkserver_preload([fn.__module__])
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=context, initializer=_ignore_sigint
            )
        return self._pool

    def _submit(self, fn: Callable[[Any], Any], item: Any) -> Future[Any]:
        try:
            return self._get_pool(fn).submit(fn, item)
        except BrokenProcessPool as exc:
            # A worker died since the last wait: this attempt fails like the ones in flight,
            # and _wait replaces the pool once every future of the old one has ended.
            failed: Future[Any] = Future()
            failed.set_exception(exc)
            return failed

    def _wait(self, handles: list[Any]) -> list[Any]:
        done, _ = wait(handles, return_when=FIRST_COMPLETED)
        if any(isinstance(f.exception(), BrokenProcessPool) for f in done):
            # A worker died: the pool is unusable and every future in flight ends with it.
            done, _ = wait(handles)
            self._discard_pool()
        return list(done)

    def _result(self, handle: Any) -> Any:
        return handle.result()

    def _cancel(self, handles: list[Any]) -> None:
        for future in handles:
            future.cancel()
        self._discard_pool()

    def _discard_pool(self) -> None:
        """Stop every worker now (their items are lost) and forget the pool."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # ProcessPoolExecutor has no public way to stop busy workers before Python 3.14
        # (terminate_workers); their processes are in its _processes.
        processes = list((getattr(pool, "_processes", None) or {}).values())
        for process in processes:
            if process.is_alive():
                process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        """Shut the pool down (idle workers exit)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    """The Ray task: ``fn(item)``."""
    return fn(item)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InputError(
            f"--executor ray needs Ray, which is not installed: {RAY_INSTALL_HINT}"
        ) from None
    return ray


class RayExecutor(_Pooled):
    """One Ray task per item (``num_cpus`` = ``threads``), on the Ray instance this process is
    connected to, the cluster at ``address``, or a local instance started here (and stopped by
    :meth:`close`). Ray's own task retries are off: :class:`_Pooled` counts the attempts."""

    name = "ray"

    def __init__(
        self, *, address: str | None, workers: int | None, threads: int, retries: int
    ) -> None:
        ray = _import_ray()
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            import logging

            try:
                ray.init(
                    address=address,
                    include_dashboard=False,
                    logging_level=logging.WARNING,
                    log_to_driver=False,
                )
            except (ConnectionError, ValueError, RuntimeError) as exc:
                where = f"at {address}" if address else "(local)"
                raise InputError(f"cannot start or reach the Ray cluster {where}: {exc}") from None
            self._started = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        super().__init__(
            workers=workers or max(1, cpus // threads), threads=threads, retries=retries
        )
        self.address = address
        self._remote = ray.remote(_call).options(num_cpus=threads, max_retries=0)

    def _submit(self, fn: Callable[[Any], Any], item: Any) -> Any:
        return self._remote.remote(fn, item)

    def _wait(self, handles: list[Any]) -> list[Any]:
        ready, _ = self._ray.wait(handles, num_returns=1)
        return list(ready)

    def _result(self, handle: Any) -> Any:
        return self._ray.get(handle)

    def _cancel(self, handles: list[Any]) -> None:
        for ref in handles:
            with contextlib.suppress(Exception):  # already finished, or its worker gone
                self._ray.cancel(ref, force=True)

    def close(self) -> None:
        """Disconnect from (and stop) the Ray instance this executor started."""
        if self._started:
            self._ray.shutdown()
            self._started = False


def make_executor(
    name: str,
    *,
    workers: int | None = None,
    threads: int = 1,
    address: str | None = None,
    retries: int = DEFAULT_RETRIES,
) -> LocalExecutor | ProcessExecutor | RayExecutor:
    """The executor ``name`` (one of :data:`EXECUTORS`), checked; bad settings are InputErrors.

    ``workers``: items at once (``processes``: default cores ÷ ``threads``, so workers × threads
    ≤ cores; ``ray``: default the cluster's CPUs ÷ ``threads``). ``threads``: torch threads per
    worker. ``address``: a running Ray cluster (``HOST:PORT``; ``ray`` only). ``retries``: more
    attempts for an item that failed (``processes`` and ``ray``).
    """
    if name not in EXECUTORS:
        raise InputError(f"unknown executor {name!r}: expected one of {', '.join(EXECUTORS)}")
    if address is not None and name != "ray":
        raise InputError(f"--address is for --executor ray, not {name}")
    for option, value, minimum in (("--threads", threads, 1), ("--retries", retries, 0)):
        if value < minimum:
            raise InputError(f"{option} must be at least {minimum}, got {value}")
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    if name == "local":
        if workers not in (None, 1):
            raise InputError("--workers is for --executor processes or ray (local runs one)")
        return LocalExecutor()
    if name == "processes":
        default = max(1, available_cores() // threads)
        return ProcessExecutor(workers=workers or default, threads=threads, retries=retries)
    return RayExecutor(address=address, workers=workers, threads=threads, retries=retries)
