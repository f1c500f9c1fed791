"""What a run recorded in the instance's event log: step windows and asset check outcomes.

Read from the instance storage rather than the CLI's output, so a test asserts on what Dagster
stored (and the UI would show), not on log wording.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dagster import AssetCheckEvaluation, DagsterEventType, DagsterInstance


@dataclass(frozen=True)
class StepWindow:
    """When a step ran, from the instance's event log (epoch seconds)."""

    step_key: str
    started: float
    ended: float
    succeeded: bool

    @property
    def seconds(self) -> float:
        """The step's duration."""
        return self.ended - self.started


def step_windows(dagster_home: Path, run_id: str) -> dict[str, StepWindow]:
    """Start and end of every step of a run that started, read from the instance storage."""
    kinds = {
        DagsterEventType.STEP_START,
        DagsterEventType.STEP_SUCCESS,
        DagsterEventType.STEP_FAILURE,
    }
    starts: dict[str, float] = {}
    windows: dict[str, StepWindow] = {}
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        for entry in instance.all_logs(run_id, of_type=kinds):
            event = entry.dagster_event
            if event is None or entry.step_key is None:
                continue
            if event.event_type == DagsterEventType.STEP_START:
                starts[entry.step_key] = entry.timestamp
            else:
                windows[entry.step_key] = StepWindow(
                    step_key=entry.step_key,
                    started=starts[entry.step_key],
                    ended=entry.timestamp,
                    succeeded=event.event_type == DagsterEventType.STEP_SUCCESS,
                )
    return windows


def check_outcomes(dagster_home: Path, run_id: str) -> dict[tuple[str, str], bool]:
    """``(asset, check) -> passed`` for every asset check a run evaluated."""
    outcomes: dict[tuple[str, str], bool] = {}
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        for entry in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
            event = entry.dagster_event
            if event is None:
                continue
            evaluation = event.event_specific_data
            assert isinstance(evaluation, AssetCheckEvaluation)
            key = (evaluation.asset_key.to_user_string(), evaluation.check_name)
            outcomes[key] = evaluation.passed
    return outcomes
