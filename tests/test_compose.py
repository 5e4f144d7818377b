"""The deployment files hold together: no container engine runs here, so their structure is checked.

docker-compose.yml is parsed with PyYAML (anchors and merge keys resolved, as Compose does) and
checked against the code: services, images, health checks, start order, volumes, that every LOCI_*
variable it names is a real setting, and that the Dockerfile starts a real `loci` command.
"""

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from app.cli import cli
from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("migrate", "api", "worker")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) per instruction, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _cli_commands() -> set[str]:
    return set(typer.main.get_command(cli).commands)  # type: ignore[attr-defined]


def _exec_form(arguments: str) -> list[str]:
    assert arguments.startswith("["), f"use the exec form (JSON array): {arguments}"
    return yaml.safe_load(arguments)


def test_services_images_and_builds(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"db", *APP_SERVICES}
    assert services["db"]["image"] == "pgvector/pgvector:pg17"
    for name in APP_SERVICES:
        assert services[name]["build"] == "."
        assert services[name]["image"] == "loci:latest"
    assert (ROOT / "Dockerfile").is_file()


def test_commands_are_real_cli_commands(compose: dict[str, Any]) -> None:
    commands = {name: compose["services"][name]["command"] for name in APP_SERVICES}
    assert commands == {"migrate": ["migrate"], "api": ["serve"], "worker": ["worker"]}
    assert {c[0] for c in commands.values()} <= _cli_commands()


def test_health_checks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])
    worker_port = services["worker"]["environment"]["LOCI_WORKER_METRICS_PORT"]
    assert f"127.0.0.1:{worker_port}/metrics" in " ".join(services["worker"]["healthcheck"]["test"])
    for name in ("db", "api", "worker"):
        check = services[name]["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL") and check["retries"] >= 1
    assert services["migrate"]["healthcheck"] == {"disable": True}  # a one-shot is never "healthy"


def test_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert services["migrate"]["restart"] == "no"
    for name in ("api", "worker"):
        assert services[name]["depends_on"] == {
            "db": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }


def test_database_volume(compose: dict[str, Any]) -> None:
    [mount] = compose["services"]["db"]["volumes"]
    volume, target = mount.split(":")
    assert target == "/var/lib/postgresql/data"
    assert volume in compose["volumes"]


def test_every_loci_variable_is_a_setting(compose: dict[str, Any], dockerfile: list[tuple[str, str]]) -> None:
    """Environment keys and ${...} references in the compose file, ENV in the Dockerfile."""
    compose_text = (ROOT / "docker-compose.yml").read_text()
    named = set(re.findall(r"\$\{(LOCI_[A-Z0-9_]+)", compose_text))
    for service in compose["services"].values():
        named |= {key for key in service.get("environment", {}) if key.startswith("LOCI_")}
    for instruction, arguments in dockerfile:
        if instruction == "ENV":
            named |= {word.split("=")[0] for word in shlex.split(arguments) if word.startswith("LOCI_")}
    assert {"LOCI_DATABASE_URL", "LOCI_BOOTSTRAP_API_KEY", "LOCI_WORKER_METRICS_PORT"} <= named
    fields = {f"LOCI_{name.upper()}" for name in Settings.model_fields}
    assert named <= fields, f"not settings: {sorted(named - fields)}"


def test_every_service_setting_parses(compose: dict[str, Any]) -> None:
    """The values given (interpolations filled with placeholders) are valid for their settings."""
    for service in compose["services"].values():
        values = {
            key.removeprefix("LOCI_").lower(): re.sub(r"\$\{[^}]+\}", "x", str(value))
            for key, value in service.get("environment", {}).items()
            if key.startswith("LOCI_")
        }
        Settings(**values)  # raises on a bad type or range


def test_required_variables_are_in_the_env_example() -> None:
    compose_text = (ROOT / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", compose_text))
    example = (ROOT / ".env.example").read_text()
    assert required == {"LOCI_BOOTSTRAP_API_KEY", "POSTGRES_PASSWORD"}
    assert all(re.search(rf"^{name}=", example, re.MULTILINE) for name in required)
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_dockerfile(dockerfile: list[tuple[str, str]]) -> None:
    instructions = [i for i, _ in dockerfile]
    args = dict(reversed(dockerfile))  # the first occurrence of each instruction
    final_stage = dockerfile[max(n for n, (i, _) in enumerate(dockerfile) if i == "FROM") :]
    assert all(a.split()[0] == "python:3.11-slim" for i, a in dockerfile if i == "FROM")
    runs = [a for i, a in dockerfile if i == "RUN"]
    torch = next(n for n, r in enumerate(runs) if "torch==2.13.0" in r)
    project = next(n for n, r in enumerate(runs) if re.search(r"pip install .*\.$", r))
    assert torch < project and "whl/cpu" in runs[torch]
    users = [a for i, a in final_stage if i == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert "/readyz" in dict(final_stage)["HEALTHCHECK"]
    assert _exec_form(args["ENTRYPOINT"]) == ["loci"]
    assert _exec_form(args["CMD"])[0] in _cli_commands()
    assert instructions.count("ENTRYPOINT") == instructions.count("CMD") == 1
    assert 'loci = "app.cli:main"' in (ROOT / "pyproject.toml").read_text()  # the entrypoint is this CLI


def test_build_context_has_what_the_dockerfile_copies(dockerfile: list[tuple[str, str]]) -> None:
    ignored = {
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")
    }
    assert {".git", ".venv", ".env"} <= ignored
    for instruction, arguments in dockerfile:
        if instruction == "COPY" and not arguments.startswith("--from"):
            *sources, _ = arguments.split()
            for source in sources:
                assert (ROOT / source).exists(), source
                assert source.rstrip("/") not in ignored, source
