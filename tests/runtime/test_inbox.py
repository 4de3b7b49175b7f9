"""The inbox between a channel's reader and the task reading one call's replies."""
from __future__ import annotations

import pytest
import trio
import trio.testing

from tractor_subint.runtime._inbox import YIELD_EVERY, Inbox
from tractor_subint.testing import trio_parent_test


@trio_parent_test(timeout=10)
async def test_items_come_out_in_order_and_close_ends_after_them():
    inbox: Inbox[int] = Inbox()
    for i in range(5):
        assert inbox.put(i)
    inbox.close()
    assert not inbox.put(99)  # closed: dropped
    assert [await inbox.get() for _ in range(5)] == list(range(5))
    with pytest.raises(trio.EndOfChannel):
        await inbox.get()


@trio_parent_test(timeout=10)
async def test_a_waiting_reader_is_woken_by_a_put_and_by_close():
    inbox: Inbox[str] = Inbox()
    got: list[object] = []

    async def read() -> None:
        got.append(await inbox.get())
        try:
            await inbox.get()
        except trio.EndOfChannel:
            got.append('end')

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        await trio.testing.wait_all_tasks_blocked()
        inbox.put('a')
        await trio.testing.wait_all_tasks_blocked()
        assert got == ['a']
        inbox.close()
    assert got == ['a', 'end']


@trio_parent_test(timeout=10)
async def test_a_ready_item_is_taken_without_a_schedule_point_but_not_forever():
    """Reading waiting items does not go through the scheduler each time
    (that is the point), yet a reader lets others run every YIELD_EVERY."""
    inbox: Inbox[int] = Inbox()
    n = YIELD_EVERY * 4
    for i in range(n):
        inbox.put(i)
    other_ran = 0

    async def other() -> None:
        nonlocal other_ran
        while True:
            other_ran += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        while not other_ran:  # it runs at every schedule point from here on
            await trio.lowlevel.checkpoint()
        before = other_ran
        for i in range(YIELD_EVERY - 1):
            assert await inbox.get() == i
        assert other_ran == before  # no schedule point yet
        for i in range(YIELD_EVERY - 1, n):
            assert await inbox.get() == i
        assert other_ran - before >= 3
        nursery.cancel_scope.cancel()


@trio_parent_test(timeout=10)
async def test_get_is_a_cancellation_point_even_with_items_waiting():
    inbox: Inbox[int] = Inbox()
    inbox.put(1)
    with trio.CancelScope() as scope:
        scope.cancel()
        await inbox.get()
    assert scope.cancelled_caught
    assert len(inbox) == 1  # nothing was taken


@trio_parent_test(timeout=10)
async def test_a_cancelled_wait_leaves_the_inbox_usable():
    inbox: Inbox[int] = Inbox()
    await _cancel_a_waiting_reader(inbox)
    inbox.put(7)
    assert await inbox.get() == 7


@trio_parent_test(timeout=10)
async def test_two_readers_at_once_is_an_error():
    inbox: Inbox[int] = Inbox()

    async def second_reader() -> None:
        with pytest.raises(trio.BusyResourceError):
            await inbox.get()

    await _cancel_a_waiting_reader(inbox, meanwhile=second_reader)


async def _cancel_a_waiting_reader(inbox: Inbox[int], meanwhile=None) -> None:
    """Start a reader waiting on the empty ``inbox``, run ``meanwhile``,
    then cancel the reader."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(inbox.get)
        await trio.testing.wait_all_tasks_blocked()
        if meanwhile is not None:
            await meanwhile()
        nursery.cancel_scope.cancel()
