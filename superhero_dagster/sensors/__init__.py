"""The project's sensors: the games sensor, the pending-period sensor, the partition-cap sensor."""

import dagster as dg


def default_status(running: bool) -> dg.DefaultSensorStatus:
    """RUNNING or STOPPED, for the sensors a setting switches off (``...=off``)."""
    return dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED
