"""A game batch's per-game check evaluations, handed to the event log as one batch.

Why not ``context.log_event(evaluation)`` per game: Dagster 1.13 stores each such event the moment
it is created, on its own. On SQLite that is three new engines, connections and commits per
evaluation (the run's file, the index file, the check's ``asset_check_executions`` row). A
py-spy profile of a 500-game run spent 47 % of the worker's time there: under the simulator's
defaults two games in three carry a ``source_anomalies`` WARN.

Dagster already has the mechanism: an event created with ``DagsterEventBatchMetadata`` (what its
step code puts on the materializations of a range run) is buffered by the instance and handed to
the storage's ``store_event_batch`` with the rest of its batch when ``DAGSTER_EVENT_BATCH_SIZE``
is set. The project's SQLite storage writes such a batch in one transaction per file
(``event_storage.py``). Only a storage that says so (``BATCHES_CHECK_EVALUATIONS``) gets them:
dagster-postgres's ``store_event_batch`` refuses check evaluations (an invariant), and the
instance would print that exception and then store the events one by one.

That reaches into two private names: ``DagsterEvent.from_step`` (public ``log_event`` has no
batch argument) and the context's ``_events`` (what ``log_event`` appends to, so the step's event
stream, e.g. ``result.get_asset_check_evaluations()``, still sees every evaluation).
tests/test_check_events.py pins both. If either is gone, ``log_event`` is used (slow, correct).
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
from dagster._core.events import (
    DagsterEvent,
    DagsterEventBatchMetadata,
    DagsterEventType,
    generate_event_batch_id,
)

#: The attribute a storage class sets to say its ``store_event_batch`` takes check evaluations.
BATCH_FLAG = "BATCHES_CHECK_EVALUATIONS"


def log_check_evaluations(
    context: dg.AssetExecutionContext, evaluations: Sequence[dg.AssetCheckEvaluation]
) -> None:
    """Log ``evaluations`` as ``context.log_event`` would, as one storage batch where possible."""
    op_context = context.op_execution_context
    pending = getattr(op_context, "_events", None)
    storage = context.instance.event_log_storage
    if (
        len(evaluations) < 2
        or not isinstance(pending, list)
        or not getattr(storage, BATCH_FLAG, False)
    ):
        for evaluation in evaluations:
            context.log_event(evaluation)
        return
    step = op_context.get_step_execution_context()
    batch_id = generate_event_batch_id()
    last = len(evaluations) - 1
    for i, evaluation in enumerate(evaluations):
        pending.append(
            DagsterEvent.from_step(
                DagsterEventType.ASSET_CHECK_EVALUATION,
                step,
                evaluation,
                message=evaluation_message(evaluation),
                batch_metadata=DagsterEventBatchMetadata(batch_id, i == last),
            )
        )


def evaluation_message(evaluation: dg.AssetCheckEvaluation) -> str:
    """The event's message in the words ``DagsterEvent.asset_check_evaluation`` uses."""
    verdict = "passed." if evaluation.passed else "did not pass."
    message = (
        f"Asset check '{evaluation.check_name}' on "
        f"'{evaluation.asset_key.to_user_string()}' {verdict}"
    )
    if evaluation.description is not None:
        message += f" Description: '{evaluation.description}'"
    return message
