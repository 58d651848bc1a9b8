"""Settings: one table of variables drives reading, defaults and handing them to children."""

from __future__ import annotations

from pathlib import Path

import pytest

from superhero_dagster.settings import ENV_DEFAULTS, VARIABLES, Settings, SettingsError


def test_every_field_round_trips_through_the_environment_of_a_child():
    s = Settings(
        redis_url="redis://:pw@127.0.0.1:1/0",
        data_dir=Path("d"),
        channels=("a", "b.*"),
        retention_days=3,
        delete_game_files=True,
        max_games_per_run=7,
    )
    back = Settings.from_env(s.to_env())
    assert back == s.with_(
        data_dir=Path("d").resolve(),
        state_dir=s.state_dir.resolve(),
        dagster_home=s.resolved_dagster_home.resolve(),
    )
    assert {v.field for v in VARIABLES} <= set(Settings.__dataclass_fields__)


def test_unset_and_empty_variables_keep_the_defaults():
    assert Settings.from_env({}) == Settings()
    assert Settings.from_env({"SUPERHERO_MAX_GAMES_PER_RUN": ""}) == Settings()
    assert ENV_DEFAULTS["SUPERHERO_MAX_GAMES_PER_RUN"] == "500"
    assert ENV_DEFAULTS["REDIS_URL"] is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SUPERHERO_MAX_GAMES_PER_RUN": "0"}, "SUPERHERO_MAX_GAMES_PER_RUN must be >= 1, got 0"),
        ({"SUPERHERO_SENSOR_INTERVAL_SECONDS": "x"}, "must be an integer, got 'x'"),
        ({"REDIS_URL": "http://:secret@h/0"}, "REDIS_URL must start with redis://"),
        ({"SUPERHERO_CHANNELS": " , "}, "SUPERHERO_CHANNELS must name at least one channel"),
        (
            {"SUPERHERO_DELETE_GAME_FILES": "maybe"},
            "SUPERHERO_DELETE_GAME_FILES must be true/false",
        ),
    ],
)
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(".", r"\.")) as err:
        Settings.from_env(env)
    assert "secret" not in str(err.value)
