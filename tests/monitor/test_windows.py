from __future__ import annotations

from monitor.windows import Watermark, Window, is_closed, iso, window_of


def test_windows_are_epoch_aligned_and_half_open():
    assert window_of(1_000, 300_000) == Window(0, 300_000)
    assert window_of(300_000, 300_000) == Window(300_000, 600_000)
    assert window_of(299_999, 300_000) == Window(0, 300_000)


def test_window_closes_only_after_end_plus_lateness():
    window = Window(0, 300_000)
    assert not is_closed(window, None, 60_000)
    assert not is_closed(window, 359_999, 60_000)
    assert is_closed(window, 360_000, 60_000)


def test_watermark_is_the_slowest_partition():
    watermark = Watermark()
    watermark.observe("t:0", 1_000)
    watermark.observe("t:1", 5_000)
    watermark.observe("t:0", 500)  # out of order: no step back
    assert watermark.value == 1_000
    watermark.forget({"t:0"})
    assert watermark.value == 5_000
    watermark.advance_to(9_000)
    assert watermark.snapshot() == {"t:1": 9_000}


def test_an_assigned_silent_partition_holds_the_watermark_back():
    watermark = Watermark({"t:0": 5_000})
    watermark.assign({"t:0", "t:1"})
    assert watermark.value is None
    assert watermark.snapshot() == {"t:0": 5_000}
    watermark.observe("t:1", 7_000)
    assert watermark.value == 5_000
    watermark.assign({"t:2"})
    watermark.advance_to(8_000)
    assert watermark.value == 8_000


def test_iso_is_rfc3339_utc():
    assert iso(1_793_610_000_250) == "2026-11-02T09:00:00.250Z"
