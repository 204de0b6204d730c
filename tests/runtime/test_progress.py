"""When a run is done: every offer final, nothing unanswered, and no prosumer's devices with more
offers to make (a later day) or a normal programme still to meter."""

from vmenergy.runtime.coordinator import Snapshot
from vmenergy.runtime.orchestrator import progress_of


def snap(summary: dict) -> Snapshot:
    return Snapshot(0, 1, 1, 1, 1, summary, 0, 0, False, None)


def test_a_run_of_template_offers_is_done_when_every_offer_is_final():
    assert progress_of(snap({"offers": {"settled": 3, "rejected": 1}}), 4).done
    assert not progress_of(snap({"offers": {"settled": 3}}), 4).done  # one not started yet
    assert not progress_of(snap({"offers": {"settled": 4}, "unanswered": 1}), 4).done


def test_offers_made_by_devices_count_without_a_plan_and_busy_devices_keep_the_run_going():
    prog = progress_of(snap({"offers": {"settled": 5}, "devices_busy": 2}), 0)
    assert prog.total == 5 and not prog.done  # tomorrow's offers are still to come
    assert progress_of(snap({"offers": {"settled": 5}, "devices_busy": 0}), 0).done
    assert not progress_of(snap({"offers": {}}), 0).done  # nothing offered yet is not done
