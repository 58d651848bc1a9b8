"""Pins the Dagster internals add_partition_metadata relies on, and the reason it exists.

If one of these fails after a Dagster upgrade, read superhero_dagster/assets/partition_metadata.py:
either the private names moved (adapt the helper), or Dagster stopped loading the partition range
on every add_asset_metadata call (then drop the helper and call the public API per game).
"""

import inspect

import dagster as dg
import pytest
from dagster._core.execution.context.metadata_logging import (
    AssetMetadataHandle,
    OutputMetadataAccumulator,
)
from dagster._core.execution.context.system import StepExecutionContext
from dagster._core.execution.plan import execute_step

from superhero_dagster.assets.partition_metadata import add_partition_metadata

PARTS = dg.DynamicPartitionsDefinition(name="pin_parts")
KEYS = [f"g{i}" for i in range(6)]


def test_dagster_still_loads_the_whole_range_on_every_partition_metadata_call() -> None:
    source = inspect.getsource(StepExecutionContext.add_asset_metadata)
    assert "get_partition_keys_in_range" in source, (
        "Dagster's add_asset_metadata no longer loads the partition range per call: "
        "add_partition_metadata may be unnecessary now (measure, then use the public call)"
    )
    assert "_metadata_accumulator" in source, "add_asset_metadata stores metadata elsewhere now"


def test_materialization_events_read_partition_metadata_from_the_accumulator() -> None:
    source = inspect.getsource(execute_step._get_output_asset_events)
    assert "get_asset_metadata(" in source and "partition_key=partition" in source
    handle = AssetMetadataHandle(asset_key=dg.AssetKey("a"), partition_key="p")
    assert handle == AssetMetadataHandle(asset_key=dg.AssetKey("a"), partition_key="p")  # a key
    accumulator = OutputMetadataAccumulator(per_output_metadata={handle: {"n": 1}})
    assert accumulator.get_asset_metadata(dg.AssetKey("a"), "p") == {"n": 1}


@dg.multi_asset(
    specs=[dg.AssetSpec("pin_a", skippable=True), dg.AssetSpec("pin_b", skippable=True)],
    partitions_def=PARTS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=False,
)
def pin_assets(context: dg.AssetExecutionContext):
    keys = list(context.partition_keys)
    add_partition_metadata(context, "pin_a", {k: {"n": i} for i, k in enumerate(keys)}, keys)
    add_partition_metadata(context, "pin_a", {keys[0]: {"extra": "x"}}, keys)  # merges
    add_partition_metadata(context, "pin_b", {k: {"name": k} for k in keys}, keys)
    # The fast path was taken: the metadata sits in the step's accumulator under Dagster's handle.
    step = context._step_execution_context
    assert isinstance(step._metadata_accumulator, OutputMetadataAccumulator)
    got = step.get_asset_metadata(asset_key=dg.AssetKey("pin_a"), partition_key=keys[0])
    assert got == {"n": 0, "extra": "x"}
    with pytest.raises(dg.DagsterInvariantViolationError, match="does not target"):
        add_partition_metadata(context, "pin_b", {"elsewhere": {"n": 1}}, keys)
    yield dg.MaterializeResult(asset_key="pin_a", metadata={"shared": 1})
    yield dg.MaterializeResult(asset_key="pin_b")


def test_each_partition_gets_its_own_metadata_in_one_range_run(dagster_home) -> None:
    with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        instance.add_dynamic_partitions(PARTS.name, KEYS)
        result = dg.materialize(
            [pin_assets],
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": KEYS[1],
                "dagster/asset_partition_range_end": KEYS[4],
            },
        )
        assert result.success
        mats = {
            (m.asset_key.to_user_string(), m.partition): {k: v.value for k, v in m.metadata.items()}
            for m in result.asset_materializations_for_node("pin_assets")
        }
    targeted = KEYS[1:5]
    assert set(mats) == {(a, k) for a in ("pin_a", "pin_b") for k in targeted}
    for i, key in enumerate(targeted):
        want_a = {"n": i, "shared": 1} | ({"extra": "x"} if i == 0 else {})
        assert mats[("pin_a", key)] == want_a
        assert mats[("pin_b", key)] == {"name": key}
