"""tests/stale_numbers.py: the numbers of output-ignored cells, stored against re-run."""

from __future__ import annotations

import nbformat
import stale_numbers as stale


def stream(name: str, text: str):
    return nbformat.v4.new_output("stream", name=name, text=text)


def merged(*outputs):
    """What nbval hands over after a run: each stream merged into one block."""
    from nbval.plugin import coalesce_streams

    return coalesce_streams([nbformat.from_dict(o) for o in outputs])


BAR = "epoch {}: 100%|##| 430/430 [00:0{}<00:00, {}it/s, loss={}]\n"


def test_timings_rates_and_versions_are_left_out():
    text = BAR.format(1, 3, "121.95", "0.175") + "3.6 s per epoch, torch 2.14.1, 98.62%\n"
    assert stale.numbers(text) == [1.0, 100.0, 430.0, 430.0, 0.175, 98.62]


def test_an_interleaved_stored_log_matches_its_merged_rerun():
    stored = [
        stream("stderr", BAR.format(1, 3, "121.95", "0.175")),
        stream("stdout", "epoch 1: accuracy 96.44%\n"),
        stream("stderr", BAR.format(2, 3, "137.26", "0.112")),
        stream("stdout", "epoch 2: accuracy 97.94%\n"),
    ]
    fresh = merged(
        stream("stderr", BAR.format(1, 2, "150.1", "0.176")),
        stream("stdout", "epoch 1: accuracy 96.40%\n"),
        stream("stderr", BAR.format(2, 2, "151.0", "0.111")),
        stream("stdout", "epoch 2: accuracy 97.96%\n"),
    )
    assert stale.compare(stored, fresh) == []


def test_a_number_that_moved_or_a_line_that_changed_is_stale():
    stored = [stream("stdout", "validation 98.62%, loss 0.0537\n")]
    assert stale.compare(stored, merged(stream("stdout", "validation 97.10%, loss 0.0537\n"))) == [
        "98.62 stored, 97.1 now"
    ]
    found = stale.compare(stored, merged(stream("stdout", "validation 98.62%\n")))
    assert found and "2 numbers stored, 1 now" in found[0]
    assert stale.compare([stream("stdout", "nan\n")], merged(stream("stdout", "nan\n"))) == []
    assert stale.compare([stream("stdout", "0.5\n")], merged(stream("stdout", "nan\n")))
