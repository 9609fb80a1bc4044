"""compose.yaml and deploy/: every service coherent with the code that will run in it.

No Docker engine runs here, so the file is read as data: images, health checks, secrets, the
``MATGATE_*`` settings, the commands (parsed by the real command-line parsers), the mounted
node configs (loaded by the real loader) and the URLs that tie nodes to their databases. The seed
job and the entry point are run for real: the seed into PostgreSQL and MariaDB, then a node on
the stores it filled.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pytest
import sqlalchemy as sa
import tomli_w
import yaml
from fastapi.testclient import TestClient
from gateway_support import free_port

from gateway.app import create_app
from gateway.cli import _parser
from gateway.config import load_config
from gateway.demo import aurora_policy
from gateway.demo import seed as seed_job
from gateway.demo.cygnus import SUPPLIERS
from gateway.routes.health import router as health_router
from gateway.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DOCKERFILE = (ROOT / "deploy" / "Dockerfile").read_text()
REQUIRED = re.compile(r"^\$\{([A-Z_][A-Z0-9_]*):\?[^}]+\}$")
INTERPOLATION = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)([^}]*)\}")
SECRET_KEY = re.compile(r"(PASSWORD|SECRET|SALT|TOKEN)$")


def _entrypoint() -> Any:
    spec = importlib.util.spec_from_file_location("entrypoint", ROOT / "deploy" / "entrypoint.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ENTRYPOINT = _entrypoint()
OURS = {name: s for name, s in SERVICES.items() if str(s.get("image", "")).startswith("matgate:")}
NODES = {name: s for name, s in OURS.items() if s["command"][:2] == ["matgate", "serve"]}


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def _config_arg(service: dict[str, Any]) -> str:
    command = service["command"]
    return command[command.index("--config") + 1]


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path (relative to the repository) of bind mounts."""
    out = {}
    for volume in service.get("volumes") or []:
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            out[target] = source
    return out


def _interpolated(value: str) -> str:
    """``value`` as compose (or the entry point) fills it, each variable standing for itself."""
    return INTERPOLATION.sub(lambda m: m.group(1), value)


def _dummy_env(service: dict[str, Any]) -> dict[str, str]:
    return {k: f"secret-{k.lower()}" for k in _env(service)}


def test_every_service_has_an_image_and_a_health_check():
    assert {"aurora", "borealis-1", "borealis-2", "cygnus"} <= set(NODES)
    for name, service in SERVICES.items():
        assert service.get("image") or service.get("build"), name
        check = service.get("healthcheck") or {}
        if check.get("disable"):
            # Only a job the others wait to complete may go without one.
            waiters = [s for s in SERVICES.values() if name in (s.get("depends_on") or {})]
            assert waiters and all(
                w["depends_on"][name]["condition"] == "service_completed_successfully"
                for w in waiters
            ), name
            assert service.get("restart") == "no", name
        else:
            assert check.get("test"), f"{name} has no health check"


def test_node_health_checks_ask_a_real_route():
    paths = {route.path for route in health_router.routes}  # type: ignore[attr-defined]
    for name, service in NODES.items():
        probe = " ".join(service["healthcheck"]["test"])
        asked = re.findall(r"http://127\.0\.0\.1:8000(/[a-z]+)", probe)
        assert asked and set(asked) <= paths, name
    assert "/readyz" in DOCKERFILE and "/readyz" in paths


def test_no_literal_secrets_and_every_variable_is_required():
    for name, service in SERVICES.items():
        for key, value in _env(service).items():
            if SECRET_KEY.search(key) and "RANDOM" not in key:
                assert REQUIRED.match(value), f"{name}.{key} must be ${{VAR:?message}}"
            for netloc in re.findall(r"://([^/]+)@", value):
                password = netloc.split(":", 1)[1] if ":" in netloc else ""
                assert REQUIRED.match(password), f"{name}.{key}: password must come from env"
    text = (ROOT / "compose.yaml").read_text()
    for var, rest in INTERPOLATION.findall(text):
        assert rest.startswith(":?"), f"${{{var}}} must be required (:?)"


def test_matgate_variables_are_real_settings():
    fields = {f"MATGATE_{name.upper()}" for name in Settings.model_fields}
    for name, service in SERVICES.items():
        for key in _env(service):
            if key.startswith("MATGATE_"):
                assert key in fields, f"{name}: {key} is no setting"
    for key in re.findall(r"\b(MATGATE_[A-Z_]+)=", DOCKERFILE):
        assert key in fields, key


def test_commands_parse_with_the_real_parsers():
    for name, service in OURS.items():
        command = service["command"]
        if command[0] == "matgate":
            args = _parser().parse_args(command[1:])
            assert getattr(args, "handler", None) is not None, name
        else:
            assert command[:3] == ["python", "-m", "gateway.demo.seed"], name
            assert seed_job.parser().parse_args(command[3:]).config, name


def test_dockerfile_entrypoint_and_command_agree_with_the_code():
    assert re.search(r"^FROM python:3\.11-slim", DOCKERFILE, re.MULTILINE)
    assert 'pip install ".[all]"' in DOCKERFILE
    users = re.findall(r"^USER (\S+)", DOCKERFILE, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    copied = re.search(r"^COPY deploy/entrypoint\.py (\S+)", DOCKERFILE, re.MULTILINE)
    entry = re.search(r"^ENTRYPOINT (\[.*\])", DOCKERFILE, re.MULTILINE)
    cmd = re.search(r"^CMD (\[.*\])", DOCKERFILE, re.MULTILINE)
    assert copied and entry and cmd
    assert yaml.safe_load(entry.group(1)) == ["python", copied.group(1)]
    command = yaml.safe_load(cmd.group(1))
    assert command[0] == "matgate" and _parser().parse_args(command[1:]).handler
    assert "--config" in command and "EXPOSE 8000" in DOCKERFILE
    for service in OURS.values():
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (ROOT / service["build"]["context"] / "deploy" / "Dockerfile").exists()


def test_mounted_configs_exist_render_and_load(tmp_path):
    for name, service in OURS.items():
        mounts = _mounts(service)
        configs = [a for a in service["command"] if a.endswith(".toml")]
        assert configs, name
        for path in configs:
            assert path in mounts, f"{name}: {path} is not mounted"
            source = ROOT / mounts[path]
            assert source.exists(), source
            load_config(source)  # loads as it is, placeholders and all
            text = source.read_text()
            needed = set(ENTRYPOINT.PLACEHOLDER.findall(text))
            assert needed <= set(_env(service)), f"{name}: {needed - set(_env(service))}"
            out = tmp_path / name
            out.mkdir(exist_ok=True)
            # The command as the container sees it, its mounted path standing at the host's file.
            command = [str(source) if a == path else a for a in service["command"]]
            argv = ENTRYPOINT.rendered_argv(command, _dummy_env(service), out)
            rendered = out / Path(path).name
            assert str(source) not in argv and str(rendered) in argv, "run on the rendered copy"
            config = load_config(rendered)
            assert "${" not in str(config.model_dump()), name


@pytest.mark.parametrize("institution", ["aurora", "borealis", "cygnus"])
def test_deploy_configs_serve_the_demo_datasets(institution, tmp_path):
    from gateway.demo import prepare_federation

    config = load_config(ROOT / "deploy" / f"{institution}.toml")
    plans = {p["institution"]: p for p in prepare_federation(tmp_path, free_port())}
    demo = load_config(plans[institution]["home"] / "node.toml")
    assert [(d.id, d.column_names) for d in config.datasets] == [
        (d.id, d.column_names) for d in demo.datasets
    ]
    assert config.policy["lines"] == demo.policy["lines"]
    if institution == "aurora":
        assert config.policy["lines"] == aurora_policy()["lines"]


def test_depends_on_and_peers_name_real_services():
    hosts = set(SERVICES)
    for service in SERVICES.values():
        aliases = ((service.get("networks") or {}).get("default") or {}).get("aliases") or []
        hosts |= set(aliases)
    for name, service in SERVICES.items():
        for dep in service.get("depends_on") or {}:
            assert dep in SERVICES and dep != name, f"{name} depends on {dep}"
    for name, service in NODES.items():
        config = load_config(ROOT / _mounts(service)[_config_arg(service)])
        assert urlsplit(config.node.public_url).hostname in hosts, name
        for peer in config.peers:
            assert urlsplit(peer.url).hostname in hosts and urlsplit(peer.url).port == 8000
            assert peer.jwks_url == f"{peer.url}/.well-known/jwks.json"


def test_database_and_store_urls_match_their_services():
    """Each URL's host is a service whose user, database and password variable agree."""

    def check(url: str, where: str) -> None:
        parts = urlsplit(_interpolated(url))
        target = SERVICES[parts.hostname]  # type: ignore[index]
        env = _env(target)
        user = env.get("POSTGRES_USER") or env.get("MARIADB_USER")
        database = env.get("POSTGRES_DB") or env.get("MARIADB_DATABASE")
        secret = env.get("POSTGRES_PASSWORD") or env.get("MARIADB_PASSWORD")
        assert parts.username == user and parts.path.lstrip("/") == database, where
        wanted = INTERPOLATION.match(secret or "")
        assert wanted and wanted.group(1) in (parts.password or ""), where

    for name, service in NODES.items():
        check(_env(service)["MATGATE_DATABASE_URL"], name)
        config = load_config(ROOT / _mounts(service)[_config_arg(service)])
        for store in config.stores.values():
            if store.kind == "sql":
                check(store.target, f"{name}: store {store.target}")
            else:
                volume_targets = [v.split(":")[1] for v in service["volumes"]]
                assert store.target in volume_targets, f"{name}: {store.target} not mounted"


def test_two_replicas_share_one_database_key_and_redis():
    replicas = [s for s in NODES.values() if _config_arg(s).endswith("borealis.toml")]
    assert len(replicas) == 2
    envs = [_env(s) for s in replicas]
    for key in ("MATGATE_DATABASE_URL", "MATGATE_POLICY_SYNC_URL", "MATGATE_KEY_FILE"):
        assert envs[0][key] == envs[1][key], key
    assert urlsplit(_interpolated(envs[0]["MATGATE_POLICY_SYNC_URL"])).hostname == "redis"
    key_dir = str(Path(envs[0]["MATGATE_KEY_FILE"]).parent)
    volumes = [
        {v.split(":")[0] for v in s["volumes"] if v.split(":")[1] == key_dir} for s in replicas
    ]
    assert volumes[0] == volumes[1] and len(volumes[0]) == 1
    for service in NODES.values():
        if service not in replicas:
            assert envs[0]["MATGATE_DATABASE_URL"] != _env(service)["MATGATE_DATABASE_URL"]


def test_published_ports_do_not_clash():
    published = []
    for service in SERVICES.values():
        for port in service.get("ports") or []:
            published.append(tuple(str(port).split(":")[:-1]))
    assert published and len(published) == len(set(published))


def test_entrypoint_renders_secrets_and_refuses_unset_ones(tmp_path):
    config = tmp_path / "node.toml"
    config.write_text('url = "postgresql://u:${DB_PASSWORD}@db/x"\nsalt = "${SALT}"\n')
    out = tmp_path / "out"
    out.mkdir()
    env = {"DB_PASSWORD": "p4ss", "SALT": "s4lt"}
    argv = ENTRYPOINT.rendered_argv(["matgate", "serve", f"--config={config}"], env, out)
    rendered = out / "node.toml"
    assert argv == ["matgate", "serve", f"--config={rendered}"]
    assert tomllib.loads(rendered.read_text()) == {
        "url": "postgresql://u:p4ss@db/x",
        "salt": "s4lt",
    }
    assert rendered.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ValueError, match="SALT"):
        ENTRYPOINT.render(config.read_text(), {"DB_PASSWORD": "p4ss", "SALT": ""})
    assert ENTRYPOINT.main(["true", "--config", str(config)]) == 78  # unset: no exec


# -- the seed job and a node on its stores, on the real servers --------------------------------


def _fresh_database(server_url: str) -> Iterator[str]:
    url = sa.make_url(server_url)
    name = f"mgseed_{uuid.uuid4().hex[:10]}"
    quote = '"' if url.get_backend_name() == "postgresql" else "`"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {quote}{name}{quote}"))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quote}{name}{quote}"))
        admin.dispose()


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[str]:
    """A database of its own on the PostgreSQL server."""
    yield from _fresh_database(pg_url)


@pytest.fixture
def mariadb_store(mariadb_url: str) -> Iterator[str]:
    """A database of its own on the MariaDB server."""
    yield from _fresh_database(mariadb_url)


def _local_config(institution: str, tmp_path: Path, stores: dict[str, str]) -> Path:
    """The deploy config, rendered, with its stores pointed at local servers and folders."""
    text = (ROOT / "deploy" / f"{institution}.toml").read_text()
    env = {n: f"secret-{n.lower()}" for n in ENTRYPOINT.PLACEHOLDER.findall(text)}
    raw = tomllib.loads(ENTRYPOINT.render(text, env))
    for name, target in stores.items():
        key = "url" if raw["stores"][name]["kind"] == "sql" else "path"
        raw["stores"][name][key] = target
    raw.pop("peers", None)
    path = tmp_path / f"{institution}.toml"
    path.write_text(tomli_w.dumps(raw))
    return path


def _node(config: Path, tmp_path: Path) -> TestClient:
    port = free_port()
    settings = Settings(
        config=config,
        data_dir=tmp_path / "node",
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        log_json=False,
        log_level="WARNING",
        audit_checkpoint_seconds=3600,
    )
    return TestClient(create_app(settings))


@pytest.mark.postgres
@pytest.mark.mariadb
def test_seed_fills_postgres_and_mariadb_stores_a_node_then_serves(
    tmp_path, pg_store, mariadb_store
):
    aurora = _local_config(
        "aurora", tmp_path, {"lab": pg_store, "files": str(tmp_path / "aurora-files")}
    )
    cygnus = _local_config("cygnus", tmp_path, {"registry": mariadb_store})
    assert seed_job.main(["--config", str(aurora), "--config", str(cygnus)]) == 0
    assert seed_job.main(["--config", str(cygnus)]) == 0  # a second run replaces, not appends
    with _node(cygnus, tmp_path / "cygnus") as api:
        node = api.app.state.node  # type: ignore[attr-defined]
        for dataset in node.catalog.all():
            node.stores.get(dataset.location.store).validate(dataset)
        guest = node.issuer.mint("mia", roles=["member"], institution="aurora")
        r = api.post(
            "/datasets/cygnus/cobalt-steels/slice",
            json={"purpose": "research"},
            headers={"Authorization": f"Bearer {guest}"},
        )
        assert r.status_code == 200, r.text
        got = pa.ipc.open_stream(r.content).read_all()
        assert got.num_rows == 193
        assert not set(got.column("supplier").to_pylist()) & set(SUPPLIERS)
    with _node(aurora, tmp_path / "aurora") as api:
        node = api.app.state.node  # type: ignore[attr-defined]
        for dataset in node.catalog.all():
            node.stores.get(dataset.location.store).validate(dataset)
        member = node.issuer.mint("mia", roles=["member"])
        r = api.get(
            "/datasets/aurora/ni-superalloys/slice",
            params={"purpose": "research", "columns": "record_id,release_at"},
            headers={"Authorization": f"Bearer {member}"},
        )
        assert r.status_code == 200 and r.text.count("\n") == 2801


def test_seed_command_line_names_its_configs():
    args = seed_job.parser().parse_args(shlex.split("--config a.toml --config b.toml"))
    assert [str(p) for p in args.config] == ["a.toml", "b.toml"]
    with pytest.raises(SystemExit):
        seed_job.parser().parse_args([])
