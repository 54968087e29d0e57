"""FrameTap (heygemd.media.tap): frames of one decode handed from its thread to another reader."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from heygemd.errors import JobInterrupted
from heygemd.media.tap import FrameTap


def frame(index: int) -> np.ndarray:
    return np.full((4, 6, 3), index % 256, np.uint8)


def produce(tap: FrameTap, count: int, close: bool = True, pause: float = 0.0) -> threading.Thread:
    """Offer frames 0..count-1 from a thread, as a decode would; close after them."""

    def run() -> None:
        for i in range(count):
            tap.offer(i, frame(i))
            time.sleep(pause)
        if close:
            tap.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_the_wanted_frames_arrive_in_order_and_nothing_else() -> None:
    tap = FrameTap()
    producer = produce(tap, 40)
    got = list(tap.take([3, 17, 18, 39], lambda: None))
    producer.join(5)
    assert not producer.is_alive()
    assert [i for i, _ in got] == [3, 17, 18, 39]
    assert all((f == i).all() for i, f in got)
    assert tap.handed == 4


def test_the_producer_waits_for_the_consumer_to_say_what_it_wants() -> None:
    tap = FrameTap()
    producer = produce(tap, 10)
    time.sleep(0.2)  # frames offered now would be lost: the producer must still be at frame 0
    assert producer.is_alive()
    assert [i for i, _ in tap.take([0, 9], lambda: None)] == [0, 9]
    producer.join(5)
    assert not producer.is_alive()


def until(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_at_most_depth_frames_wait_and_the_producer_is_held_meanwhile() -> None:
    tap = FrameTap(depth=2)
    producer = produce(tap, 10)
    taking = tap.take(range(10), lambda: None)
    first = next(taking)
    assert until(lambda: len(tap._waiting) == 2)
    time.sleep(0.1)
    assert producer.is_alive() and len(tap._waiting) == 2  # held at the third frame waiting
    rest = list(taking)
    assert [i for i, _ in [first, *rest]] == list(range(10))
    producer.join(5)


def test_a_producer_that_closes_early_ends_the_take() -> None:
    tap = FrameTap()
    producer = produce(tap, 5)  # offers 0..4 only
    got = [i for i, _ in tap.take([2, 4, 8, 12], lambda: None)]
    assert got == [2, 4]  # 8 and 12 are the consumer's to decode
    producer.join(5)


def test_a_consumer_that_stops_never_holds_the_producer() -> None:
    tap = FrameTap(depth=1)
    producer = produce(tap, 200)
    taking = tap.take(range(200), lambda: None)
    next(taking)
    tap.stop()
    producer.join(5)
    assert not producer.is_alive()  # every later offer returned at once
    assert list(taking) == []  # and nothing more is handed over


def test_a_consumer_that_stops_before_saying_releases_the_producer() -> None:
    tap = FrameTap()
    producer = produce(tap, 10)
    time.sleep(0.1)
    tap.stop()  # e.g. the faces came from the cache
    producer.join(5)
    assert not producer.is_alive()


def test_the_consumer_reports_while_it_waits_and_what_report_raises_ends_it() -> None:
    tap = FrameTap()
    reports: list[float] = []

    def report() -> None:
        reports.append(time.monotonic())
        if len(reports) >= 3:
            raise JobInterrupted("stopped")

    producer = produce(tap, 1, close=False)  # a producer that goes quiet without closing
    with pytest.raises(JobInterrupted):
        list(tap.take([0, 5], report))
    tap.stop()
    producer.join(5)
    assert len(reports) == 3 and reports[-1] - reports[0] < 5.0


def test_close_before_take_ends_it_at_once() -> None:
    tap = FrameTap()
    tap.close()  # e.g. the engine's analysis was cached: it decodes nothing
    assert list(tap.take([0, 1], lambda: None)) == []
    tap.offer(0, frame(0))  # a late offer after the close is ignored, not held
    assert tap.handed == 0


def test_the_take_ends_once_the_last_wanted_frame_is_handed_over() -> None:
    tap = FrameTap()
    producer = produce(tap, 300, close=False, pause=0.01)  # goes on for 3 s, never closes
    t0 = time.monotonic()
    got = [i for i, _ in tap.take([2, 5], lambda: None)]
    assert got == [2, 5] and time.monotonic() - t0 < 2.0  # not held until the producer ends
    tap.stop()
    producer.join(5)


def test_finished_says_whether_the_producer_reached_the_end_and_is_never_unsaid() -> None:
    tap = FrameTap()
    assert not tap.finished
    tap.close(finished=True)
    tap.close()  # the backstop close of a caller that does not know
    assert tap.finished
    other = FrameTap()
    other.close()  # stopped short (an error, a cached analysis)
    assert not other.finished


def test_several_producers_hand_each_wanted_frame_once_in_the_order_offered() -> None:
    """Segments of a file decoded at once: the later one offers first, and a frame both decode
    (a segment that went on past its end) is handed over once; the take ends when every wanted
    frame has come, before the tap is closed."""
    tap = FrameTap()
    got: list[int] = []
    consumer = threading.Thread(target=lambda: got.extend(
        i for i, _ in tap.take([5, 25, 30, 45], lambda: None)), daemon=True)
    consumer.start()

    def segment(start: int, stop: int) -> None:
        for i in range(start, stop):
            tap.offer(i, frame(i))

    late = threading.Thread(target=segment, args=(20, 50), daemon=True)
    late.start()
    late.join(5)  # 25 and 30 wait (DEPTH 2), then 45 once they are taken
    early = threading.Thread(target=segment, args=(0, 35), daemon=True)  # 25, 30 again
    early.start()
    early.join(5)
    consumer.join(5)
    assert not consumer.is_alive() and not late.is_alive() and not early.is_alive()
    assert got == [25, 30, 45, 5] and tap.handed == 4


def test_a_take_never_ends_while_the_last_wanted_frame_waits_for_room() -> None:
    """The producer waits for room (DEPTH frames waiting) with the last wanted frame in hand;
    a consumer that empties the queue meanwhile waits for it instead of ending without it."""
    def taking(tap: FrameTap, got: list[int]) -> None:
        got.extend(i for i, _ in tap.take([0, 1, 2], lambda: None))

    for _ in range(100):
        tap = FrameTap(depth=2)
        got: list[int] = []
        consumer = threading.Thread(target=taking, args=(tap, got), daemon=True)
        consumer.start()
        for i in range(5):
            tap.offer(i, frame(i))
        consumer.join(5)
        assert not consumer.is_alive() and got == [0, 1, 2]
