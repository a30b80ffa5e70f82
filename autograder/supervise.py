"""Run each task of a batch in a process of its own, with its own deadline: a task whose process dies (out of
memory, a crash) or overruns is reported as failed, and the others carry on.

Used by :func:`autograder.grade.grade_batch`, one task per submission. Processes are forked from a
forkserver that has imported the grader once (``preload``), so that a task starts in milliseconds, not in
the seconds importing torch takes.
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass
from multiprocessing.connection import wait


@dataclass
class Ended:
    """How one task ended: ``result`` when it returned, else ``problem`` says what happened."""

    index: int
    result: object = None
    problem: str = ""


def _work(conn, target, arguments: tuple) -> None:
    """In the task's process: run it and send back what it returned."""
    result = target(*arguments)
    conn.send(result)
    conn.close()


def _context(preload: list[str]):
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if context.get_start_method() == "forkserver" and preload:
        context.set_forkserver_preload(preload)
    return context


def run_each(target, tasks: list[tuple], jobs: int, deadline_s: float, preload: list[str] = ()):
    """Run ``target(*task)`` for each task, each in its own process, at most ``jobs`` at once; yield an
    :class:`Ended` per task as it ends (in the order they end)."""
    context = _context(list(preload))
    waiting = list(range(len(tasks)))
    running: dict[int, tuple] = {}  # index → (process, connection, deadline)
    while waiting or running:
        while waiting and len(running) < max(1, jobs):
            index = waiting.pop(0)
            receive, send = context.Pipe(duplex=False)
            process = context.Process(target=_work, args=(send, target, tasks[index]), daemon=True)
            process.start()
            send.close()
            running[index] = (process, receive, time.monotonic() + deadline_s)
        soonest = min(d for _, _, d in running.values())
        ready = set(wait([c for _, c, _ in running.values()] + [p.sentinel for p, _, _ in running.values()],
                         timeout=max(0.0, soonest - time.monotonic())))
        for index, (process, conn, deadline) in list(running.items()):
            ended = _collect(index, process, conn, deadline, ready)
            if ended is not None:
                del running[index]
                yield ended


def _collect(index: int, process, conn, deadline: float, ready: set) -> Ended | None:
    """The task's end if it has ended (returned, died or overran), else None."""
    if conn in ready:
        try:
            result = conn.recv()
        except (EOFError, OSError):
            process.join(10)
            return Ended(index, problem=f"its process died (exit code {process.exitcode})")
        except Exception as err:  # noqa: BLE001 - a result that cannot be unpickled
            result, problem = None, f"its result could not be read ({type(err).__name__})"
        else:
            problem = ""
        process.join(10)
        conn.close()
        return Ended(index, result, problem)
    if process.sentinel in ready and not conn.poll():
        process.join(10)
        conn.close()
        return Ended(index, problem=f"its process died (exit code {process.exitcode})")
    if time.monotonic() >= deadline:
        process.kill()
        process.join(10)
        conn.close()
        return Ended(index, problem="it took longer than its deadline and was stopped")
    return None
