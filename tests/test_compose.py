"""The production stack in compose/ checked without a Docker engine.

What a `docker compose up` would trip over is checked here instead: the file against the Compose
Specification's JSON schema (the copy vendored in the `check-jsonschema` PyPI package), every
command against the CLIs installed in the image (parsed by their own click definitions), every
file the build copies, every variable, port, health check and start-up dependency, and
compose/dagster.yaml against Dagster's own instance config schema. (`docker compose config` is
not used: the machine has no compose plugin, and a check that can only skip proves nothing.)
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import click
import pytest
import yaml

from superhero_dagster.settings import ENV_DEFAULTS, Settings
from tests.conftest import require

REPO = Path(__file__).resolve().parents[1]
COMPOSE_DIR = REPO / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
DAGSTER_YAML = COMPOSE_DIR / "dagster.yaml"
WORKSPACE_YAML = COMPOSE_DIR / "workspace.yaml"
DOCKERFILE = COMPOSE_DIR / "Dockerfile"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
TEST_OVERRIDE = COMPOSE_DIR / "docker-compose.test.yml"

WEBSERVER_PORT = 3000
GRPC_PORT = 4000
SECRETS = ("REDIS_PASSWORD", "POSTGRES_PASSWORD")
# Test-only stand-ins, so rendered environments can be checked; never in a committed config.
FAKE_SECRETS = {"REDIS_PASSWORD": "testredispw0", "POSTGRES_PASSWORD": "testpgpw0"}
# Console scripts the image provides (pip install .), by the module attribute holding the click root.
CLI_ROOTS = {
    "dagster": ("dagster._cli", "cli"),
    "dagster-webserver": ("dagster_webserver.cli", "cli"),
    "dagster-daemon": ("dagster._daemon.cli", "cli"),
    "superhero-dagster": ("superhero_dagster.cli", "cli"),
}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|AUTH|CREDENTIAL", re.IGNORECASE)

# ---------------------------------------------------------------- compose interpolation


_INTERP = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


class MissingVariable(KeyError):
    """A `${VAR:?message}` whose variable is unset: compose refuses to start."""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable substitution (`$$`, `${V}`, `${V:-d}`, `${V-d}`, `${V:?e}`, `${V?e}`)."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group("braced") or m.group("bare")
        op, arg, value = m.group("op"), m.group("arg") or "", env.get(name)
        if op == ":-":
            return value or arg
        if op == "-":
            return arg if value is None else value
        if (op == ":?" and not value) or (op == "?" and value is None):
            raise MissingVariable(f"{name}: {arg}")
        return value or ""

    return _INTERP.sub(sub, text)


def referenced_variables(text: str) -> set[str]:
    return {
        m.group("braced") or m.group("bare") for m in _INTERP.finditer(text) if m.group(0) != "$$"
    }


def strings(node: Any) -> Iterator[str]:
    """Every string value of a parsed YAML document (compose interpolates values, not keys)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def render(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, Mapping):
        return {key: render(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [render(value, env) for value in node]
    return node


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
            values[key.strip()] = value.strip()
    return values


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def deploy_env() -> dict[str, str]:
    """What a user's compose/.env holds: the example, with the two secrets filled in."""
    return read_env_file(ENV_EXAMPLE) | FAKE_SECRETS


@pytest.fixture(scope="module")
def stack(raw: dict[str, Any], deploy_env: dict[str, str]) -> dict[str, Any]:
    """The compose file as the engine would see it (variables substituted)."""
    return render(raw, deploy_env)


def services(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return doc["services"]


def ours(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Services running the project image (built from compose/Dockerfile)."""
    return {name: svc for name, svc in services(doc).items() if "build" in svc}


def environment(svc: Mapping[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def service_running(doc: Mapping[str, Any], *argv_prefix: str) -> tuple[str, dict[str, Any]]:
    found = [
        (name, svc)
        for name, svc in services(doc).items()
        if list(svc.get("command") or [])[: len(argv_prefix)] == list(argv_prefix)
    ]
    assert len(found) == 1, f"expected one service running {argv_prefix}, found {found}"
    return found[0]


def option_value(argv: list[str], *flags: str) -> str:
    for i, token in enumerate(argv):
        if token in flags:
            return argv[i + 1]
    raise AssertionError(f"{argv} has none of {flags}")


# ---------------------------------------------------------------- Compose Specification schema


def _compose_schema() -> dict[str, Any]:
    require(
        importlib.util.find_spec("check_jsonschema") is not None,
        "check-jsonschema (ships the Compose Specification schema) is not installed: "
        "pip install -e '.[dev]'",
    )
    from importlib.resources import files

    vendor = files("check_jsonschema.builtin_schemas.vendor")
    return json.loads(vendor.joinpath("compose-spec.json").read_text(encoding="utf-8"))


def _schema_errors(doc: Mapping[str, Any]) -> list[str]:
    import jsonschema

    schema = _compose_schema()
    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema, format_checker=validator_cls.FORMAT_CHECKER)
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(doc)
    ]


def test_compose_file_matches_the_compose_specification(raw: dict[str, Any]) -> None:
    assert _schema_errors(raw) == []


@pytest.mark.parametrize(
    "breakage",
    ["misspelt healthcheck", "bad depends_on condition", "unknown top-level key"],
)
def test_schema_check_catches_mistakes(raw: dict[str, Any], breakage: str) -> None:
    doc = copy.deepcopy(raw)
    if breakage == "misspelt healthcheck":
        doc["services"]["redis"]["healthchek"] = doc["services"]["redis"].pop("healthcheck")
    elif breakage == "bad depends_on condition":
        doc["services"]["webserver"]["depends_on"]["code-server"]["condition"] = "healthy"
    else:
        doc["service"] = {}
    assert _schema_errors(doc), f"{breakage} went unnoticed"


# Top-level keys docker-compose 1.29 (Compose v1, what Debian packages) accepts besides x-*.
COMPOSE_V1_TOP_LEVEL = {"version", "services", "volumes", "networks", "secrets", "configs"}


def test_compose_file_is_valid_for_compose_v1_too(raw: dict[str, Any]) -> None:
    """`make test-compose` runs the file with docker-compose 1.29, which rejects `name:`."""
    assert {k for k in raw if not k.startswith("x-")} <= COMPOSE_V1_TOP_LEVEL
    # The project name comes from compose/.env instead (both Compose versions read it there).
    assert read_env_file(ENV_EXAMPLE)["COMPOSE_PROJECT_NAME"] == "superhero-dagster"


def test_images_default_to_the_official_ones(raw: dict[str, Any]) -> None:
    lines = [line.split() for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()]
    froms = [parts[1] for parts in lines if parts[:1] == ["FROM"]]
    assert froms == ["${PYTHON_IMAGE}"]
    args = dict(p[1].partition("=")[::2] for p in lines if p[:1] == ["ARG"])
    assert args["PYTHON_IMAGE"] == "python:3.11-slim"
    assert services(raw)["redis"]["image"].startswith("redis:")
    assert services(raw)["postgres"]["image"].startswith("postgres:")


def test_test_override_swaps_image_sources_only(raw: dict[str, Any]) -> None:
    """compose/docker-compose.test.yml: same Dockerfile, same services, other base images."""
    override = yaml.safe_load(TEST_OVERRIDE.read_text(encoding="utf-8"))
    assert _schema_errors(override) == []
    assert set(override["services"]) == set(services(raw)), "every service, no new one"
    for name, svc in override["services"].items():
        base = services(raw)[name]
        if "build" in base:
            assert set(svc) == {"build"}, name
            same = {k: v for k, v in svc["build"].items() if k != "args"}
            assert same == base["build"], f"{name}: another build than production's"
            assert set(svc["build"]["args"]) == {"PYTHON_IMAGE"}, name
        else:
            assert set(svc) == {"image"}, name
    for path in ("python", "redis", "postgres"):
        assert (COMPOSE_DIR / "local-bases" / f"{path}.Dockerfile").is_file()


# ---------------------------------------------------------------- commands


def _click_root(script: str) -> click.Command:
    module_name, attr = CLI_ROOTS[script]
    return getattr(importlib.import_module(module_name), attr)


def _container_paths() -> dict[str, Path]:
    """Files the Dockerfile copies into the image: container path -> repository path."""
    mapping: dict[str, Path] = {}
    workdir = PurePosixPath("/")
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if parts[:1] == ["WORKDIR"]:
            workdir = workdir / parts[1]
        if parts[:1] != ["COPY"]:
            continue
        assert not any(p.startswith("--") for p in parts), f"unsupported COPY form: {line}"
        sources, dest = parts[1:-1], parts[-1]
        base = workdir / dest
        for source in sources:
            target = base / PurePosixPath(source).name if dest.endswith("/") else base
            mapping[target.as_posix()] = REPO / source
    return mapping


def parse_command(argv: list[str]) -> click.Context:
    """Resolve argv through the real click groups and parse its options (nothing is run)."""
    local = _container_paths()
    argv = [str(local.get(token, token)) for token in argv]
    assert argv[0] in CLI_ROOTS, f"{argv[0]!r} is not a console script the image installs"
    command, args, path = _click_root(argv[0]), argv[1:], [argv[0]]
    while isinstance(command, click.Group):
        assert args, f"{' '.join(path)} needs a subcommand"
        ctx = command.make_context(path[-1], list(args), resilient_parsing=True)
        sub = command.get_command(ctx, args[0])
        assert sub is not None, (
            f"`{' '.join(path)} {args[0]}` does not exist; "
            f"available: {sorted(command.list_commands(ctx))}"
        )
        command, path, args = sub, [*path, args[0]], args[1:]
        if path == ["superhero-dagster", "daemon"]:  # hands its arguments to dagster-daemon's CLI
            command = _click_root("dagster-daemon")
        if path == ["superhero-dagster", "code-server"]:  # ... and this one to dagster's
            command = _click_root("dagster").get_command(ctx, "code-server")
    try:
        return command.make_context(" ".join(path), list(args))
    except click.ClickException as exc:
        raise AssertionError(f"`{' '.join(argv)}`: {exc.format_message()}") from None


def _project_commands(doc: Mapping[str, Any]) -> Iterator[tuple[str, list[str]]]:
    for name, svc in ours(doc).items():
        yield f"{name}.command", list(svc["command"])
        test = (svc.get("healthcheck") or {}).get("test")
        if test and test[0] == "CMD" and test[1] in CLI_ROOTS:
            yield f"{name}.healthcheck", list(test[1:])


def test_every_command_exists_in_the_image_clis(stack: dict[str, Any]) -> None:
    problems = []
    checked = 0
    for where, argv in _project_commands(stack):
        try:
            parse_command(argv)
            checked += 1
        except AssertionError as exc:
            problems.append(f"{where}: {exc}")
    assert problems == []
    assert checked >= 6  # code-server, webserver, daemon, listener, simulator + health checks


def test_command_check_rejects_unknown_subcommands_and_options() -> None:
    with pytest.raises(AssertionError, match="does not exist"):
        parse_command(["superhero-dagster", "no-such-command"])
    with pytest.raises(AssertionError, match="No such option"):
        parse_command(["dagster", "code-server", "start", "--no-such-option"])


def test_code_location_is_the_projects(stack: dict[str, Any]) -> None:
    _, svc = service_running(stack, "superhero-dagster", "code-server", "start")
    argv = list(svc["command"])
    tool = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["dagster"]
    module = option_value(argv, "-m", "--module-name")
    assert module == tool["module_name"]
    assert option_value(argv, "--location-name") == tool["code_location_name"]
    assert importlib.util.find_spec(module) is not None, f"{module} is not in the package"
    workspace = yaml.safe_load(WORKSPACE_YAML.read_text(encoding="utf-8"))
    (entry,) = workspace["load_from"]
    assert entry["grpc_server"]["location_name"] == tool["code_location_name"]


# ---------------------------------------------------------------- build


def test_build_context_and_copied_files_exist(raw: dict[str, Any]) -> None:
    built = ours(raw)
    assert set(built) >= {"code-server", "webserver", "daemon", "listener", "simulator"}
    for name, svc in built.items():
        context = (COMPOSE_DIR / svc["build"]["context"]).resolve()
        assert context == REPO, f"{name}: build context {context} is not the repository root"
        assert (context / svc["build"]["dockerfile"]).resolve() == DOCKERFILE
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    copies = _container_paths()
    assert copies, "the Dockerfile copies nothing"
    for target, source in copies.items():
        assert source.exists(), f"COPY {source.relative_to(REPO)} {target}: no such file"
        rel = source.relative_to(REPO).as_posix()
        assert rel not in ignored and rel.split("/")[0] not in ignored, f"{rel} is .dockerignored"
    # `pip install .` needs the project metadata and the files it names.
    assert {"pyproject.toml", "README.md", "superhero_dagster"} <= {
        p.relative_to(REPO).as_posix() for p in copies.values()
    }
    assert copies["/opt/dagster/dagster_home/dagster.yaml"] == DAGSTER_YAML


def test_dockerfile_runs_as_non_root_with_the_instance_home() -> None:
    lines = [line.split() for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()]
    users = [parts[1] for parts in lines if parts[:1] == ["USER"]]
    assert users and users[-1] not in ("root", "0"), "the image must not run as root"
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "DAGSTER_HOME=/opt/dagster/dagster_home" in text
    assert re.search(r"^RUN pip install --no-deps \.", text, re.MULTILINE)


# ---------------------------------------------------------------- variables


def test_every_variable_is_documented_or_a_setting(raw: dict[str, Any]) -> None:
    documented = set(read_env_file(ENV_EXAMPLE))
    referenced = set().union(*(referenced_variables(s) for s in strings(raw)))
    assert referenced - documented - set(ENV_DEFAULTS) == set()
    # ...and the example documents nothing the stack ignores (compose reads its own variables).
    assert documented - referenced == {"COMPOSE_PROJECT_NAME"}


def _image_env() -> set[str]:
    names = set()
    for line in DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ").splitlines():
        if line.startswith("ENV "):
            names |= {item.partition("=")[0] for item in line.split()[1:] if "=" in item}
    return names


def test_every_setting_reaches_the_project_containers(raw: dict[str, Any]) -> None:
    assert "DAGSTER_HOME" in _image_env()
    for name, svc in ours(raw).items():
        missing = set(ENV_DEFAULTS) - set(environment(svc)) - _image_env()
        assert missing == set(), f"{name} does not pass {sorted(missing)} (x-project-env)"


def test_container_environments_are_accepted_by_settings(stack: dict[str, Any]) -> None:
    for name, svc in ours(stack).items():
        settings = Settings.from_env(environment(svc))
        assert settings.redis_url == f"redis://:{FAKE_SECRETS['REDIS_PASSWORD']}@redis:6379/0"
        assert settings.data_dir == Path("/data"), name
        assert settings == Settings.from_env(environment(svc) | {"SUPERHERO_CHANNELS": ""})


def test_compose_refuses_to_start_without_the_secrets(
    raw: dict[str, Any], deploy_env: dict[str, str]
) -> None:
    for secret in SECRETS:
        with pytest.raises(MissingVariable, match=secret):
            render(raw, {k: v for k, v in deploy_env.items() if k != secret})


# ---------------------------------------------------------------- secrets


def test_no_secret_is_written_in_the_compose_file_or_the_image(raw: dict[str, Any]) -> None:
    for name, svc in services(raw).items():
        for key, value in environment(svc).items():
            if SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", value), (
                    f"{name}.{key} must be a required ${{VAR:?}} reference, got {value!r}"
                )
    for text in strings(raw):
        for userinfo in re.findall(r"://([^@/\s]*)@", text):
            password = userinfo.partition(":")[2]
            assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", password), f"literal secret in {text!r}"
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    for line in dockerfile.splitlines():
        if line.split()[:1] in (["ENV"], ["ARG"]):
            assert not SECRET_NAME.search(line), f"secret-looking build setting: {line}"
    assert "requirepass" not in dockerfile
    example = read_env_file(ENV_EXAMPLE)
    assert {key: example[key] for key in SECRETS} == dict.fromkeys(SECRETS, "")
    assert ".env" in {
        PurePosixPath(line.strip()).name
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    }


def test_redis_password_never_on_a_command_line(raw: dict[str, Any]) -> None:
    redis = services(raw)["redis"]
    command = " ".join(redis["command"])
    assert "--requirepass" not in command
    assert "requirepass" in command and "$$REDIS_PASSWORD" in command  # config file at start-up
    assert "appendonly yes" in command
    assert environment(redis)["REDISCLI_AUTH"] == environment(redis)["REDIS_PASSWORD"]
    health = " ".join(redis["healthcheck"]["test"])
    assert "redis-cli" in health and "-a " not in health and "PASSWORD" not in health


# ---------------------------------------------------------------- ports, order, scaling, volumes


def _container_port(mapping: str) -> int:
    return int(mapping.rsplit(":", 1)[-1].split("/")[0])


def test_ports_are_consistent(stack: dict[str, Any]) -> None:
    _, web = service_running(stack, "dagster-webserver")
    argv = list(web["command"])
    assert int(option_value(argv, "-p", "--port")) == WEBSERVER_PORT
    assert [_container_port(p) for p in web["ports"]] == [WEBSERVER_PORT]
    assert f"127.0.0.1:{WEBSERVER_PORT}/" in " ".join(web["healthcheck"]["test"])
    assert option_value(argv, "-w", "--workspace") == "/opt/dagster/workspace.yaml"

    code_name, code = service_running(stack, "superhero-dagster", "code-server", "start")
    argv = list(code["command"])
    assert int(option_value(argv, "-p", "--port")) == GRPC_PORT
    assert option_value(argv, "-h", "--host") == "0.0.0.0"  # reachable from other containers
    assert int(option_value(list(code["healthcheck"]["test"]), "-p")) == GRPC_PORT
    assert [int(p) for p in code["expose"]] == [GRPC_PORT]
    workspace = yaml.safe_load(WORKSPACE_YAML.read_text(encoding="utf-8"))
    grpc = workspace["load_from"][0]["grpc_server"]
    assert (grpc["host"], grpc["port"]) == (code_name, GRPC_PORT)

    exposed = {
        int(port)
        for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
        if line.startswith("EXPOSE")
        for port in line.split()[1:]
    }
    assert exposed == {WEBSERVER_PORT, GRPC_PORT}


def test_stack_comes_up_in_order(stack: dict[str, Any]) -> None:
    svcs = services(stack)
    for name, svc in svcs.items():
        for dep, spec in (svc.get("depends_on") or {}).items():
            assert dep in svcs, f"{name} depends on unknown service {dep}"
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in svcs[dep], f"{name} waits for {dep}'s missing healthcheck"
    code_name, _ = service_running(stack, "superhero-dagster", "code-server", "start")
    for argv0 in (("dagster-webserver",), ("superhero-dagster", "daemon", "run")):
        name, svc = service_running(stack, *argv0)
        assert svc["depends_on"][code_name]["condition"] == "service_healthy", name
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy", name
    code = svcs[code_name]
    assert code["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("listener", "simulator", "daemon"):
        assert svcs[name]["depends_on"]["redis"]["condition"] == "service_healthy", name
    assert svcs["postgres"]["healthcheck"]["test"][1] == "pg_isready"


def test_listener_and_simulator_scale(stack: dict[str, Any]) -> None:
    for argv in (["superhero-dagster", "listen"], ["superhero-dagster", "simulate"]):
        name, svc = service_running(stack, *argv)
        assert "container_name" not in svc, f"{name} cannot be scaled with a container_name"
        assert "ports" not in svc, f"{name} cannot be scaled with fixed host ports"
    # Exactly one daemon per deployment: Dagster does not support replicas of it.
    _, daemon = service_running(stack, "superhero-dagster", "daemon", "run")
    assert (daemon.get("deploy") or {}).get("replicas", 1) == 1


def test_sinks_volume_is_where_runs_execute(stack: dict[str, Any]) -> None:
    """DefaultRunLauncher: a run is a subprocess of the code server (dagster/_grpc/server.py)."""
    instance = yaml.safe_load(DAGSTER_YAML.read_text(encoding="utf-8"))
    assert instance["run_launcher"]["class"] == "DefaultRunLauncher", (
        "another run launcher runs elsewhere: mount the sinks in its run containers instead"
    )
    _, code = service_running(stack, "superhero-dagster", "code-server", "start")
    data_dir = environment(code)["SUPERHERO_DATA_DIR"]
    mounts = dict(reversed(v.split(":")[:2]) for v in code["volumes"])
    assert data_dir in mounts, f"code-server does not mount the sinks at {data_dir}"
    assert mounts[data_dir] in stack["volumes"], "sinks must be a named (persistent) volume"
    artifacts = instance["local_artifact_storage"]["config"]["base_dir"]
    for argv in (("dagster-webserver",), ("superhero-dagster", "daemon", "run")):
        _, svc = service_running(stack, *argv)
        assert artifacts in {v.split(":")[1] for v in svc["volumes"]}


# ---------------------------------------------------------------- compose/dagster.yaml


def _dagster_env(stack: dict[str, Any]) -> dict[str, str]:
    _, daemon = service_running(stack, "superhero-dagster", "daemon", "run")
    return environment(daemon)


#: InstanceRef's storage fields: schema-checked only (building them would connect to Postgres).
STORAGE_FIELDS = ("storage_data", "run_storage_data", "event_storage_data", "schedule_storage_data")


def validate_instance_yaml(home: Path) -> dict[str, Any]:
    """Dagster's own checks: the instance schema, then each configured class's config schema.

    Classes that need no server are instantiated; storage is schema-checked only (it would
    connect to Postgres).
    """
    from dagster._config import process_config, resolve_to_config_type
    from dagster._core.errors import DagsterInvalidConfigError
    from dagster._core.instance.ref import InstanceRef
    from dagster._serdes.config_class import class_from_code_pointer

    ref = InstanceRef.from_dir(str(home))  # validates against the instance schema
    built = {}
    for field in (
        *STORAGE_FIELDS,
        "run_coordinator_data",
        "run_launcher_data",
        "compute_logs_data",
        "local_artifact_storage_data",
        "scheduler_data",
    ):
        data = getattr(ref, field)
        klass = class_from_code_pointer(data.module_name, data.class_name)
        result = process_config(resolve_to_config_type(klass.config_type()), data.config_dict)
        if not result.success:
            raise DagsterInvalidConfigError(f"{field}: {data.class_name}", result.errors, None)
        if field not in STORAGE_FIELDS:
            built[field] = data.rehydrate()
    built["settings"] = ref.settings
    built["storage_class"] = ref.storage_data.class_name
    return built


@pytest.fixture
def compose_instance_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stack: dict[str, Any]
) -> Path:
    for key, value in _dagster_env(stack).items():
        monkeypatch.setenv(key, value)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DAGSTER_YAML, home / "dagster.yaml")
    return home


def test_compose_dagster_yaml_passes_dagster_schema(
    compose_instance_home: Path, stack: dict[str, Any]
) -> None:
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster._core.storage.noop_compute_log_manager import NoOpComputeLogManager

    from superhero_dagster.instance_config import ANALYTICS, GAMES_BATCH, RUN_KIND_TAG

    built = validate_instance_yaml(compose_instance_home)
    assert built["storage_class"] == "CompositeStorage"
    doc = yaml.safe_load(DAGSTER_YAML.read_text(encoding="utf-8"))
    classes = {
        key: doc[key]["class"] for key in ("run_storage", "event_log_storage", "schedule_storage")
    }
    assert classes == {
        "run_storage": "PostgresRunStorage",
        "event_log_storage": "BatchingPostgresEventLogStorage",
        "schedule_storage": "PostgresScheduleStorage",
    }
    # One server for all three (the anchor), and SQLAlchemy picks the driver from the scheme:
    # name the one dagster-postgres installs.
    pg = doc["event_log_storage"]["config"]
    assert doc["run_storage"]["config"] == pg == doc["schedule_storage"]["config"]
    dialect, _, driver = pg["postgres_db"]["scheme"].partition("+")
    assert dialect == "postgresql" and importlib.util.find_spec(driver or "psycopg") is not None
    coordinator = built["run_coordinator_data"]
    assert isinstance(coordinator, QueuedRunCoordinator)
    queue = coordinator.get_run_queue_config()
    max_runs = int(_dagster_env(stack)["SUPERHERO_MAX_CONCURRENT_RUNS"])
    assert queue.max_concurrent_runs == max_runs
    limits = {(e["key"], e["value"]): e["limit"] for e in queue.tag_concurrency_limits}
    assert set(limits) == {(RUN_KIND_TAG, GAMES_BATCH), (RUN_KIND_TAG, ANALYTICS)}
    assert 1 <= limits[RUN_KIND_TAG, GAMES_BATCH] < max_runs, "keep a slot free for analytics"
    assert 1 <= limits[RUN_KIND_TAG, ANALYTICS] < max_runs, "keep a slot free for game batches"
    assert isinstance(built["compute_logs_data"], NoOpComputeLogManager)
    settings = built["settings"]
    assert settings["run_monitoring"]["enabled"] is True
    assert settings["run_retries"]["enabled"] is True and settings["run_retries"]["max_retries"] > 0
    assert settings["telemetry"]["enabled"] is False
    assert settings["sensors"]["use_threads"] is True


@pytest.mark.parametrize(
    "breakage",
    ["top-level typo", "coordinator option typo", "postgres key typo", "missing env var"],
)
def test_dagster_yaml_check_catches_mistakes(
    compose_instance_home: Path, monkeypatch: pytest.MonkeyPatch, breakage: str
) -> None:
    from dagster._core.errors import DagsterInvalidConfigError

    path = compose_instance_home / "dagster.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if breakage == "top-level typo":
        doc["run_monitorng"] = doc.pop("run_monitoring")
    elif breakage == "coordinator option typo":
        config = doc["run_coordinator"]["config"]
        config["max_concurent_runs"] = config.pop("max_concurrent_runs")
    elif breakage == "postgres key typo":
        pg = doc["event_log_storage"]["config"]["postgres_db"]
        pg["host"] = pg.pop("hostname")
    else:
        monkeypatch.delenv("SUPERHERO_MAX_CONCURRENT_RUNS")
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(DagsterInvalidConfigError):
        validate_instance_yaml(compose_instance_home)


def test_every_dagster_yaml_env_var_is_set_where_dagster_runs(stack: dict[str, Any]) -> None:
    def env_refs(node: Any) -> Iterator[str]:
        if isinstance(node, Mapping):
            if set(node) == {"env"}:
                yield node["env"]
            for value in node.values():
                yield from env_refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from env_refs(value)

    needed = set(env_refs(yaml.safe_load(DAGSTER_YAML.read_text(encoding="utf-8"))))
    assert needed
    dagster_services = [
        service_running(stack, "superhero-dagster", "code-server", "start"),
        service_running(stack, "dagster-webserver"),
        service_running(stack, "superhero-dagster", "daemon", "run"),
    ]
    for name, svc in dagster_services:
        env = environment(svc)
        assert {k for k in needed if not env.get(k)} == set(), name
        assert env["DAGSTER_HOME"] == "/opt/dagster/dagster_home", name


def test_readme_commands_use_this_compose_file() -> None:
    readme = (COMPOSE_DIR / "README.md").read_text(encoding="utf-8")
    commands = [
        shlex.split(line.strip())
        for line in readme.splitlines()
        if line.strip().startswith("docker compose")
    ]
    assert commands
    for argv in commands:
        if "-f" in argv:
            assert argv[argv.index("-f") + 1] == "compose/docker-compose.yml", argv


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def throwaway_postgres() -> Iterator[dict[str, str]]:
    """A private PostgreSQL cluster on a free loopback port, removed afterwards."""
    import os
    import pwd
    import tempfile

    binaries = [shutil.which(b) for b in ("initdb", "pg_ctl")]
    require(all(binaries), "PostgreSQL server binaries (initdb, pg_ctl) not found")
    initdb, pg_ctl = binaries
    prefix: list[str] = []
    # Not under pytest's tmp_path: its parents are private to root, and the server is not root.
    root = Path(tempfile.mkdtemp(prefix="superhero-pg-"))
    if os.geteuid() == 0:  # the server refuses to run as root
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            require(False, "running as root and there is no 'postgres' user for the server")
            raise
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    data = root / "data"
    run = {"check": True, "capture_output": True, "text": True, "timeout": 120}
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    try:
        subprocess.run(
            [*prefix, initdb, "-N", "-A", "trust", "-U", "dagster", "-D", str(data)], **run
        )
        subprocess.run(
            [
                *prefix,
                pg_ctl,
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(root / "log"),
                "-w",
                "start",
            ],
            **run,
        )
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        raise AssertionError(f"throwaway PostgreSQL did not start: {exc.stderr}") from None
    try:
        yield {
            "DAGSTER_POSTGRES_HOST": "127.0.0.1",
            "DAGSTER_POSTGRES_PORT": str(port),
            "DAGSTER_POSTGRES_USER": "dagster",
            "DAGSTER_POSTGRES_DB": "postgres",
        }
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], **run)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.postgres
def test_compose_dagster_yaml_runs_on_real_postgres(
    compose_instance_home: Path,
    throwaway_postgres: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The compose instance config against a real server: tables created, a run round-trips."""
    import dagster as dg

    from superhero_dagster.instance_config import GAMES_BATCH, RUN_KIND_TAG

    for key, value in throwaway_postgres.items():
        monkeypatch.setenv(key, value)
    with dg.DagsterInstance.from_config(str(compose_instance_home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "BatchingPostgresEventLogStorage"
        run = instance.add_run(dg.DagsterRun(job_name="probe", tags={RUN_KIND_TAG: GAMES_BATCH}))
        instance.report_engine_event("probe event", run)
        stored = instance.get_run_by_id(run.run_id)
        assert stored is not None and stored.tags[RUN_KIND_TAG] == GAMES_BATCH
        messages = [e.message for e in instance.all_logs(run.run_id)]
        assert "probe event" in messages
