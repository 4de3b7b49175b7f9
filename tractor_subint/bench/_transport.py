"""``bench --transport``: bytes between this interpreter and an isolated
subinterpreter on its own thread, over a socket pair (what the ``subint``
backend's channels use) or over interpreter queues (``_interpqueues``).

An echo loop runs in the subinterpreter; this side sends a payload and waits
for it to come back, many times. A queue has no file descriptor: nothing
(trio's epoll included) can sleep until an item arrives, so a receiver must
poll it, or be woken by something that has one. The rows show what each
costs: polling flat out (the best latency a queue can give, one core burnt per
waiting end), polling every 1 ms (what a trio task would do without burning
the core; the stdlib's own blocking ``Queue.get`` sleeps 10 ms between polls),
and a pipe byte rung after each put (a receiver can sleep in epoll).
"""
from __future__ import annotations

import _interpqueues
import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ..spawn._subint_host import new_subint, run_subint_here

_REMOVE_UNBOUND: Literal[1] = 1
"""Unbound-item policy of the queues: drop items of a destroyed interpreter."""
_POLL_SLEEP = 0.001

_SOCKET_ECHO = '''
import socket
sock = socket.socket(fileno=__fd__)
buffer = bytearray(1 << 20)
view = memoryview(buffer)
try:
    while True:
        n = sock.recv_into(buffer)
        if not n:
            break
        sock.sendall(view[:n])
finally:
    sock.detach()
'''

_QUEUE_ECHO = '''
import _interpqueues, sys, time
def put(obj):
    if sys.version_info >= (3, 14):
        _interpqueues.put(__out__, obj, 1)
    else:
        _interpqueues.put(__out__, obj, 0, 1)
import os
while True:
    if __bell_in__ >= 0:
        os.read(__bell_in__, 1)
    try:
        item = _interpqueues.get(__in__)[0]
    except Exception:  # QueueEmpty
        if __sleep__:
            time.sleep(__sleep__)
        continue
    if item == b'':
        break
    put(item)
    if __bell_out__ >= 0:
        os.write(__bell_out__, b'.')
'''


def _queue_create() -> int:
    if sys.version_info >= (3, 14):
        return int(_interpqueues.create(0, _REMOVE_UNBOUND, -1))
    return int(_interpqueues.create(0, 0, _REMOVE_UNBOUND))  # fmt 0: shareable objects only


def _queue_put(qid: int, obj: bytes) -> None:
    if sys.version_info >= (3, 14):
        _interpqueues.put(qid, obj, _REMOVE_UNBOUND)
    else:
        _interpqueues.put(qid, obj, 0, _REMOVE_UNBOUND)  # fmt 0, as created


def _queue_get(qid: int, sleep: float) -> bytes:
    while True:
        try:
            item: bytes = _interpqueues.get(qid)[0]
            return item
        except Exception:  # QueueEmpty (its class lives in a Python module that registers it)
            if sleep:
                time.sleep(sleep)


@dataclass
class TransportRow:
    name: str
    size: int
    rtt_us: float
    """Median round trip, microseconds."""
    cpu_us: float
    """Process CPU time per round trip (both ends), microseconds."""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TransportRow:
        return cls(str(data['name']), int(data['size']), float(data['rtt_us']), float(data['cpu_us']))


def _measure(round_trip: Callable[[], None], n: int) -> tuple[float, float]:
    for _ in range(min(50, n)):  # warm-up
        round_trip()
    times = []
    cpu_started = time.process_time()
    for _ in range(n):
        started = time.perf_counter()
        round_trip()
        times.append(time.perf_counter() - started)
    cpu = (time.process_time() - cpu_started) / n
    return statistics.median(times) * 1e6, cpu * 1e6


def _with_echo(code: str, shared: Mapping[str, object], body: Callable[[], tuple[float, float]],
               stop: Callable[[], None]) -> tuple[float, float]:
    interp_id = new_subint('isolated')
    thread = threading.Thread(
        target=run_subint_here, args=(code,), kwargs={'shared': shared, 'interp_id': interp_id},
        name='bench-echo',
    )
    thread.start()
    try:
        return body()
    finally:
        try:
            stop()
        finally:
            thread.join()


def _socket_row(size: int, n: int) -> tuple[float, float]:
    ours, theirs = socket.socketpair()
    payload = b'x' * size
    buffer = bytearray(1 << 20)

    def round_trip() -> None:
        ours.sendall(payload)
        received = 0
        while received < size:
            received += ours.recv_into(buffer)

    try:
        return _with_echo(_SOCKET_ECHO, {'__fd__': theirs.fileno()},
                          lambda: _measure(round_trip, n), lambda: ours.shutdown(socket.SHUT_WR))
    finally:
        ours.close()
        theirs.close()


def _queue_row(size: int, n: int, sleep: float, *, doorbell: bool = False) -> tuple[float, float]:
    """``doorbell``: each put is followed by a byte on a pipe, which the
    receiver blocks on before it gets (how a queue could wake a trio task)."""
    to_echo, from_echo = _queue_create(), _queue_create()
    bell_to_echo, bell_from_echo = os.pipe() if doorbell else (-1, -1), os.pipe() if doorbell else (-1, -1)
    payload = b'x' * size

    def send(obj: bytes) -> None:
        _queue_put(to_echo, obj)
        if doorbell:
            os.write(bell_to_echo[1], b'.')

    def round_trip() -> None:
        send(payload)
        if doorbell:
            os.read(bell_from_echo[0], 1)
        _queue_get(from_echo, sleep)

    shared = {
        '__in__': to_echo, '__out__': from_echo, '__sleep__': sleep,
        '__bell_in__': bell_to_echo[0], '__bell_out__': bell_from_echo[1],
    }
    try:
        return _with_echo(_QUEUE_ECHO, shared, lambda: _measure(round_trip, n), lambda: send(b''))
    finally:
        _interpqueues.destroy(to_echo)
        _interpqueues.destroy(from_echo)
        for fd in (*bell_to_echo, *bell_from_echo):
            if fd >= 0:
                os.close(fd)


def measure_transports(sizes: tuple[int, ...] = (64, 65536), n: int = 2000) -> list[TransportRow]:
    """Each transport at each payload size, side by side in this run."""
    rows = []
    for size in sizes:
        count = n if size <= 4096 else n // 4
        measured = [
            ('socket pair (blocking recv)', _socket_row(size, count)),
            ('interpreter queues, polled flat out', _queue_row(size, count, 0.0)),
            ('interpreter queues, polled every 1 ms', _queue_row(size, count // 10, _POLL_SLEEP)),
            ('interpreter queues + a pipe doorbell', _queue_row(size, count, 0.0, doorbell=True)),
        ]
        rows += [TransportRow(name, size, rtt, cpu) for name, (rtt, cpu) in measured]
    return rows


def render_transports(rows: list[TransportRow]) -> str:
    lines = [
        '| transport | payload | round trip (us, median) | CPU per round trip (us) | rtt / socket |',
        '|---|---|---|---|---|',
    ]
    socket_rtt = {row.size: row.rtt_us for row in rows if row.name.startswith('socket')}
    for row in rows:
        base = socket_rtt.get(row.size)
        ratio = f'{row.rtt_us / base:.2f}x' if base else '–'
        lines.append(f'| {row.name} | {row.size} B | {row.rtt_us:.1f} | {row.cpu_us:.1f} | {ratio} |')
    return '\n'.join(lines)


TRANSPORT_LEGEND = '''\
Transport: this interpreter and an echo loop in an isolated subinterpreter on
its own thread, no trio, raw bytes. Round trip = send a payload, wait for it
back (median); CPU = this process's CPU time per round trip, both ends. A
queue has no fd, so its receiver polls: flat out (one core burnt per waiting
end), every 1 ms (a trio task's price for not burning it), or blocks on a
pipe byte rung after each put.'''
