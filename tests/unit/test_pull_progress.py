"""Docker's pull stream as progress: per layer, bytes that never go back."""

from __future__ import annotations

from containerlease_tui.engine.pull import PullTracker

# The shape of Docker's stream for a pull of one 4 MiB layer: numbers restart at Extracting.
STREAM: list[dict[str, object]] = [
    {"status": "Pulling from containerlease-test", "id": "busybox"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "a1"},
    {"status": "Downloading", "progressDetail": {"current": 512, "total": 4_300_000}, "id": "a1"},
    {
        "status": "Downloading",
        "progressDetail": {"current": 4_000_000, "total": 4_300_000},
        "id": "a1",
    },
    {"status": "Verifying Checksum", "progressDetail": {}, "id": "a1"},
    {"status": "Download complete", "progressDetail": {}, "id": "a1"},
    {"status": "Extracting", "progressDetail": {"current": 32_768, "total": 4_300_000}, "id": "a1"},
    {"status": "Pull complete", "progressDetail": {}, "id": "a1"},
    {"status": "Digest: sha256:00"},
    {"status": "Status: Downloaded newer image for containerlease-test:busybox"},
]


def test_a_layers_bytes_never_go_back_and_a_done_layer_is_whole() -> None:
    tracker = PullTracker()
    reports = [tracker.report(m) for m in STREAM]
    layer = [r for r in reports if r.layer == "a1"]
    assert [r.current for r in layer] == [0, 512, 4_000_000, *[4_300_000] * 4]
    assert [r.total for r in layer][1:] == [4_300_000] * 6
    assert layer[-1].layers_done == layer[-1].layers_total == 1
    # Whole-image messages carry no layer and no bytes.
    assert all(r.layer == "" and r.total == 0 for r in reports if r not in layer)


def test_an_existing_layer_counts_as_done_without_bytes() -> None:
    tracker = PullTracker()
    report = tracker.report({"status": "Already exists", "progressDetail": {}, "id": "b2"})
    assert (report.current, report.total, report.layers_done, report.layers_total) == (0, 0, 1, 1)


def test_hostile_numbers_stay_within_the_layer() -> None:
    tracker = PullTracker()
    tracker.report(
        {"status": "Downloading", "progressDetail": {"current": 10, "total": 100}, "id": "c"}
    )
    over = tracker.report(
        {"status": "Downloading", "progressDetail": {"current": 10**12, "total": "x"}, "id": "c"}
    )
    assert (over.current, over.total) == (100, 100)
    assert (
        tracker.report({"status": "Downloading", "progressDetail": "junk", "id": "c"}).current
        == 100
    )
