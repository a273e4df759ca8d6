"""target-stitch-import under Meltano 4, as README.md's "Meltano" section tells a user to run it.

Meltano (``meltano>=4.4,<5``) is installed from PyPI into a cached venv (``meltano_project.py``),
PostgreSQL comes from Debian's packages (``pg.py``) with the seeded tables of ``seed.py``,
meltanolabs-tap-postgres 0.10.0 from its cached venv (``taps.py``, added to the project with
``--from-ref`` and an absolute ``executable``), and the loader is added from this checkout's
``plugins/loaders/target-stitch-import--tsi.yml`` exactly as the README says; Meltano installs it
(with uv) from ``TARGET_STITCH_IMPORT_PIP_URL`` in the project's ``.env``. The emulator is started
through the plugin's own ``serve`` command on a free port.

What is proven:

* the plugin definition declares every setting ``--about`` lists (but the three it does not
  honour) with the right kind, a label, a description and the same default; the repository's
  ``meltano.yml`` holds the same loader block and fetches nothing from git;
* ``meltano config list`` shows ``token`` as required and every setting with a typed value;
  ``meltano config set`` stores decimals, booleans and objects as such and the target takes them;
* ``meltano run``: a keyed INCREMENTAL table and a keyless FULL_TABLE one land exactly; after
  updates and an insert the next run sends only the changed rows (plus the bookmark row the tap
  re-reads with ``>=``) and the updates win; ``meltano state get`` holds the target's last STATE;
  with ``emit_activate_version_messages`` the keyless table is never doubled, and a
  ``--full-refresh`` after deletes leaves it with exactly the current rows;
* a wrong token fails ``meltano --log-level=warning run`` with the target's reason on screen;
* ``meltano add --custom`` answered by hand as the README shows gives a working plugin;
* the repository's own ``meltano.yml`` (PyPI only) installs and loads the demo stream.

Time on 2 cores: about 2 min with the venvs cached, about 3 min 10 s cold (Meltano's venv, the
tap's and uv's cache all new; PostgreSQL already installed, as the real-tap tests leave it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import typing as t
import uuid
from dataclasses import dataclass
from pathlib import Path

import pg
import pytest
import seed
import taps
import yaml  # type: ignore[import-untyped]
from harness import Database
from meltano_project import Invocation, MeltanoProject, install_meltano

from target_stitch_import.emulator.storage import Storage

if t.TYPE_CHECKING:
    from collections.abc import Iterator

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFINITION = REPO_ROOT / "plugins" / "loaders" / "target-stitch-import--tsi.yml"
LOADER = "target-stitch-import"
EXTRACTOR = "tap-postgres"
#: ``meltano init`` makes ``dev`` the default environment; state IDs carry its name.
STATE_ID = f"dev:{EXTRACTOR}-to-{LOADER}"
TOKEN = "meltano-test-token"
ITEMS = f"public-{seed.ITEMS}"
EVENTS = f"public-{seed.EVENTS}"

#: Settings ``--about`` lists that the definition leaves out, and why.
NOT_HONOURED = {
    "load_method": "Stitch upserts by key_properties and appends without; no load method applies",
    "batch_config": "configures writing BATCH files (taps); the target reads what BATCH names",
    "faker_config": "needs Faker, which the package does not install",
}
#: JSON Schema type -> Meltano setting kind.
KINDS = {
    "string": "string",
    "integer": "integer",
    "number": "decimal",
    "boolean": "boolean",
    "object": "object",
    "array": "array",
}

#: Set with ``meltano config set`` (as text, as a user types them): kinds the issue saw broken,
#: decimals and a boolean (``stream_map_config`` adds an object).
CONFIGURED: dict[str, t.Any] = {
    "max_batch_age_seconds": 0.5,
    "progress_interval_seconds": 0.5,
    "validate_records": False,
}

#: What the README's ``meltano add target-stitch-import --custom`` tells a user to type.
CUSTOM_SETTINGS = (
    "token:password,region,api_url,max_batch_bytes:integer,batch_size_rows:integer,"
    "max_batch_age_seconds:decimal,request_timeout_seconds:decimal,max_retry_seconds:decimal,"
    "first_contact_seconds:decimal,progress_interval_seconds:decimal,"
    "max_buffered_bytes:integer,max_requests_in_flight:integer,sequence_source,schema_mode,"
    "validate_only:boolean,dry_run_dir,lean_record_path:boolean,record_workers:integer,"
    "validate_records:boolean,"
    "process_activate_version_messages:boolean,add_record_metadata:boolean,"
    "stream_maps:object,stream_map_config:object,flattening_enabled:boolean,"
    "flattening_max_depth:integer,flattening_max_key_length:integer,flattening_separator"
)


def about_settings() -> dict[str, dict[str, t.Any]]:
    """``target-stitch-import --about --format=json``'s settings (the installed target)."""
    script = Path(sys.executable).parent / "target-stitch-import"
    done = subprocess.run(
        [str(script), "--about", "--format=json"], capture_output=True, check=True, timeout=60
    )
    return json.loads(done.stdout)["settings"]["properties"]


def expected_kind(schema: dict[str, t.Any]) -> str:
    """The Meltano kind for a setting's JSON Schema."""
    if "enum" in schema:
        return "options"
    types = [name for name in schema["type"] if name != "null"]
    assert len(types) == 1, schema
    return KINDS[types[0]]


def definition() -> dict[str, t.Any]:
    """The plugin definition file."""
    return yaml.safe_load(DEFINITION.read_text(encoding="utf-8"))


# The definition itself (no Meltano needed)


def test_definition_declares_every_setting_the_target_honours() -> None:
    about = about_settings()
    plugin = definition()
    declared = {setting["name"]: setting for setting in plugin["settings"]}
    assert set(declared) == set(about) - set(NOT_HONOURED)
    assert set(NOT_HONOURED) <= set(about), "a left-out setting is gone: update NOT_HONOURED"
    for name, setting in declared.items():
        schema = about[name]
        assert setting["kind"] == expected_kind(schema), name
        assert setting.get("label"), name
        assert setting.get("description"), name
        if schema.get("default") is not None:
            assert setting.get("value") == schema["default"], name
        if "enum" in schema:
            assert [option["value"] for option in setting["options"]] == schema["enum"], name
        assert bool(setting.get("sensitive")) == bool(schema.get("secret")), name
    assert declared["token"]["kind"] == "string"
    assert plugin["settings_group_validation"] == [["token"]]
    assert plugin["pip_url"] == "${TARGET_STITCH_IMPORT_PIP_URL}"


def test_definition_capabilities_are_the_targets() -> None:
    script = Path(sys.executable).parent / "target-stitch-import"
    done = subprocess.run(
        [str(script), "--about", "--format=json"], capture_output=True, check=True, timeout=60
    )
    assert definition()["capabilities"] == json.loads(done.stdout)["capabilities"]


def test_repository_meltano_yml_uses_the_definition_and_nothing_from_git() -> None:
    project = yaml.safe_load((REPO_ROOT / "meltano.yml").read_text(encoding="utf-8"))
    assert project["requires_meltano"].startswith(">=4")
    loaders = project["plugins"]["loaders"]
    assert [block["name"] for block in loaders] == [LOADER]
    assert loaders[0] == definition(), "meltano.yml's loader block differs from the definition"
    assert project["env"]["TARGET_STITCH_IMPORT_PIP_URL"] == "-e ."
    for plugins in project["plugins"].values():
        for block in plugins:
            assert "git+" not in str(block.get("pip_url", "")), block["name"]
            assert "api_url" not in block.get("config", {}), "the emulator's URL belongs to dev"
    environments = {env["name"]: env for env in project["environments"]}
    assert project["default_environment"] == "dev"
    dev_loader = environments["dev"]["config"]["plugins"]["loaders"][0]
    assert dev_loader["config"]["api_url"] == "http://127.0.0.1:8765"
    for name, env in environments.items():
        if name != "dev":
            assert "api_url" not in json.dumps(env), name


# One Meltano project for the module: the loader added and configured as the README says


@pytest.fixture(scope="session")
def meltano_bin() -> Path:
    """Meltano 4 in its cached venv."""
    return install_meltano()


@pytest.fixture(scope="module")
def project(meltano_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> MeltanoProject:
    """A new project with the loader added ``--from-ref`` and configured with ``config set``."""
    project = MeltanoProject.init(meltano_bin, tmp_path_factory.mktemp("meltano"))
    project.append_dotenv(TARGET_STITCH_IMPORT_PIP_URL=str(REPO_ROOT))
    added = project.meltano("add", LOADER, "--from-ref", str(DEFINITION))
    assert f"Installed loader '{LOADER}'" in added.stderr, added.describe()
    for name, value in CONFIGURED.items():
        project.meltano("config", "set", LOADER, name, str(value).lower())
    project.meltano("config", "set", LOADER, "stream_map_config", '{"source": "meltano"}')
    return project


def test_config_list_shows_token_required_and_every_setting(project: MeltanoProject) -> None:
    listing = project.meltano("config", "list", LOADER).stdout
    assert "Required settings: token" in listing
    required = listing.split("Required:\n", 1)[1]
    assert required.startswith("token [env: TARGET_STITCH_IMPORT_TOKEN] current value: None"), (
        listing
    )

    every = project.meltano("config", "list", LOADER, "--all").stdout
    declared = {setting["name"]: setting for setting in definition()["settings"]}
    for name, setting in declared.items():
        line = re.search(
            rf"^{name} \[env: TARGET_STITCH_IMPORT_{name.upper()}\].*$", every, re.MULTILINE
        )
        assert line, f"{name} missing from `meltano config list --all`:\n{every}"
        assert f"{setting['label']}: " in every, name
        if name in CONFIGURED:
            assert f"current value: {CONFIGURED[name]!r} (from `meltano.yml`)" in line.group(0)
        elif setting.get("value") is not None:
            assert f"current value: {setting['value']!r} (default)" in line.group(0), line.group(0)

    # Meltano hands the target typed values: what `config set` stored, by kind.
    printed = json.loads(project.meltano("config", "print", LOADER, "--format", "json").stdout)
    assert printed["max_batch_age_seconds"] == 0.5
    assert printed["validate_records"] is False
    assert printed["stream_map_config"] == {"source": "meltano"}
    assert printed["max_batch_bytes"] == 4_000_000
    assert printed["region"] == "us"
    loader_yml = project.plugin("loaders", LOADER)
    kinds = {setting["name"]: setting["kind"] for setting in loader_yml["settings"]}
    assert kinds == {name: setting["kind"] for name, setting in declared.items()}
    assert set(loader_yml["commands"]) == {"serve", "show"}


# A pipeline: PostgreSQL -> meltanolabs-tap-postgres -> target-stitch-import -> the emulator


@pytest.fixture(scope="module")
def postgres(request: pytest.FixtureRequest) -> pg.PgServer:
    """The session's PostgreSQL server; skipped where it cannot be installed (not root)."""
    try:
        pg.ensure_installed()
    except pg.PostgresUnavailableError as exc:
        pytest.skip(str(exc))
    return request.getfixturevalue("pg_server")


@dataclass(frozen=True)
class Pipeline:
    """The project with the tap added, its database and the emulator it loads into."""

    project: MeltanoProject
    database: Database
    emulator: Invocation
    emulator_database: Path

    def run(
        self,
        *run_options: str,
        log_level: str | None = None,
        token: str = TOKEN,
        check: bool = True,
    ) -> str:
        """``meltano [--log-level=L] run [options] tap-postgres target-stitch-import``.

        The token comes from ``TARGET_STITCH_IMPORT_TOKEN`` as the README's ``export`` does.

        Returns:
            Meltano's log (standard error), where the plugins' log lines appear.
        """
        levels = [f"--log-level={log_level}"] if log_level else []
        result = self.project.meltano(
            *levels, "run", *run_options, EXTRACTOR, LOADER,
            env={"TARGET_STITCH_IMPORT_TOKEN": token},
            check=check,
        )  # fmt: skip
        return result.stderr

    def rows(self, table: str) -> list[dict[str, t.Any]]:
        """The emulator table's visible rows."""
        with Storage(self.emulator_database) as storage:
            return storage.rows(table)

    def messages(self, table: str) -> int:
        """Messages the emulator accepted for ``table`` so far."""
        with Storage(self.emulator_database) as storage:
            return int(storage.stats()["tables"].get(table, {}).get("messages", 0))

    def assert_items_match(self, *, deleted: tuple[int, ...] = ()) -> None:
        """``public-items`` holds the database's rows exactly (and the ``deleted`` ids, kept)."""
        loaded = self.rows(ITEMS)
        kept = [row for row in loaded if row["id"] not in deleted]
        assert sorted(row["id"] for row in loaded if row["id"] in deleted) == sorted(deleted)
        problems = seed.keyed_differences(
            seed.ITEMS,
            self.database.rows(seed.ITEMS),
            kept,
            self.database.columns(seed.ITEMS),
        )
        assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:25])

    def assert_events_match(self) -> None:
        """``public-events_nopk`` holds exactly the database's rows, once each."""
        problems = seed.multiset_differences(
            seed.EVENTS,
            self.database.rows(seed.EVENTS),
            self.rows(EVENTS),
            self.database.columns(seed.EVENTS),
        )
        assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:25])

    def assert_state_is_latest_bookmark(self) -> dict[str, t.Any]:
        """``meltano state get`` holds the bookmark of the newest row, and the full table's {}."""
        state = self.project.state(STATE_ID)
        assert state is not None, "meltano state get found no state"
        bookmarks = state["singer_state"]["bookmarks"]
        assert bookmarks[EVENTS] == {}
        assert bookmarks[ITEMS]["replication_key"] == "updated_at"
        newest = self.database.execute(
            f"SELECT max(updated_at) AT TIME ZONE 'UTC' FROM {seed.ITEMS}"
        ).strip()
        value = bookmarks[ITEMS]["replication_key_value"]
        assert seed.normalize_timestamp(value) == seed.normalize_timestamp(newest), state
        return state


TAP_DEFINITION = """\
name: tap-postgres
namespace: tap_postgres
variant: meltanolabs
executable: {executable}
capabilities: [catalog, discover, state, about, stream-maps, activate-version]
settings:
- {{name: host, kind: string}}
- {{name: port, kind: integer}}
- {{name: user, kind: string}}
- {{name: password, kind: string, sensitive: true}}
- {{name: database, kind: string}}
- {{name: filter_schemas, kind: array}}
"""


@pytest.fixture(scope="module")
def pipeline(
    project: MeltanoProject,
    postgres: pg.PgServer,
    seed_template: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Pipeline]:
    """The tap added to the project, reading a fresh copy of the seeded database."""
    work = tmp_path_factory.mktemp("meltano-pipeline")
    name = f"tsi_meltano_{uuid.uuid4().hex[:12]}"
    postgres.create_database(name, template=seed_template)
    tap = taps.install(taps.MELTANOLABS)
    tap_yml = work / "tap-postgres.yml"
    tap_yml.write_text(TAP_DEFINITION.format(executable=tap.command), encoding="utf-8")
    project.meltano("add", EXTRACTOR, "--from-ref", str(tap_yml))

    def configure(data: dict[str, t.Any]) -> None:
        block = next(p for p in data["plugins"]["extractors"] if p["name"] == EXTRACTOR)
        block["config"] = {
            "host": postgres.host,
            "port": postgres.port,
            "user": postgres.user,
            "database": name,
            "filter_schemas": ["public"],
            # README: without it a keyless FULL_TABLE stream is appended again on every run.
            "emit_activate_version_messages": True,
        }
        block["select"] = [f"{ITEMS}.*", f"{EVENTS}.*"]
        block["metadata"] = {
            ITEMS: {"replication-method": "INCREMENTAL", "replication-key": "updated_at"},
            EVENTS: {"replication-method": "FULL_TABLE"},
        }

    project.edit(configure)
    project.append_dotenv(TAP_POSTGRES_PASSWORD=postgres.password)

    emulator_database = work / "emulator.sqlite"
    emulator = project.invoke_in_background(
        f"{LOADER}:serve", "--port", "0", "--database", str(emulator_database), "--token", TOKEN,
        stdout=work / "serve.stdout",
        stderr=work / "serve.stderr",
    )  # fmt: skip
    try:
        project.meltano("--environment=dev", "config", "set", LOADER, "api_url", emulator.url)
        yield Pipeline(project, Database(postgres, name), emulator, emulator_database)
    finally:
        emulator.stop()
        postgres.drop_database(name)


def test_runs_incremental_and_full_table_then_changes_then_full_refresh(
    pipeline: Pipeline,
) -> None:
    # First run: both tables land exactly; the state is the newest row's bookmark.
    log = pipeline.run()
    assert "Total: " in log, log[-3000:]  # the target's summary, shown by Meltano
    pipeline.assert_items_match()
    pipeline.assert_events_match()
    first_state = pipeline.assert_state_is_latest_bookmark()
    shown = pipeline.project.meltano(
        "invoke", f"{LOADER}:show", ITEMS, "--json", "--database", str(pipeline.emulator_database)
    )
    assert len(json.loads(shown.stdout)) == len(pipeline.database.rows(seed.ITEMS))

    # Updates and an insert: the next run sends only those rows (and the bookmark row, which
    # the tap re-reads with >=); the updates win; the keyless table is replaced, not doubled.
    pipeline.database.execute(seed.UPDATE_SQL)
    before = pipeline.messages(ITEMS)
    pipeline.run()
    sent = pipeline.messages(ITEMS) - before
    assert sent == len(seed.UPDATED_IDS) + 1 + 1, f"{sent} rows sent for 5 changed ones"
    pipeline.assert_items_match()
    pipeline.assert_events_match()
    second_state = pipeline.assert_state_is_latest_bookmark()
    assert second_state != first_state

    # Deletes, then a full refresh: the keyless full table holds exactly the current rows;
    # the keyed incremental table gets every row again and keeps the deleted ones (Stitch
    # upserts, it never deletes).
    pipeline.database.execute(seed.DELETE_SQL)
    before = pipeline.messages(ITEMS)
    log = pipeline.run("--full-refresh")
    assert "Performing full refresh" in log, log[-3000:]
    assert pipeline.messages(ITEMS) - before == len(pipeline.database.rows(seed.ITEMS))
    pipeline.assert_events_match()
    pipeline.assert_items_match(deleted=(2, 105))
    pipeline.assert_state_is_latest_bookmark()


def test_wrong_token_fails_with_the_targets_reason_at_warning_level(pipeline: Pipeline) -> None:
    state = pipeline.project.state(STATE_ID)
    wrong = "not-the-token-4711"
    log = pipeline.run(log_level="warning", token=wrong, check=False)
    error = re.search(r"^.*\[error\s*\] target-stitch-import .*HTTP 401.*$", log, re.MULTILINE)
    assert error, f"the target's reason is not shown at --log-level=warning:\n{log[-3000:]}"
    assert pipeline.emulator.url in error.group(0)
    assert "Loader failed" in log
    assert wrong not in log
    assert "[info" not in log
    # The tap echoes its input state before any record and the target passes such a STATE
    # on (Meltano keeps it); no bookmark moves.
    after = pipeline.project.state(STATE_ID)
    assert items_bookmark(after) == items_bookmark(state), f"a failed run moved the state: {after}"


def items_bookmark(state: dict[str, t.Any] | None) -> object:
    """The bookmark of ``public-items`` in a Meltano state (None when there is none)."""
    return (state or {}).get("singer_state", {}).get("bookmarks", {}).get(ITEMS)


# --custom, answered by hand


def test_custom_add_answered_as_the_readme_says(
    meltano_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    project = MeltanoProject.init(meltano_bin, tmp_path_factory.mktemp("meltano-custom"))
    answers = "\n".join(["", str(REPO_ROOT), "target-stitch-import", CUSTOM_SETTINGS, ""])
    project.meltano("add", LOADER, "--custom", stdin=answers)
    block = project.plugin("loaders", LOADER)
    assert block["namespace"] == "target_stitch_import"
    assert block["pip_url"] == str(REPO_ROOT)
    typed = {setting["name"]: setting.get("kind") or "string" for setting in block["settings"]}
    # By hand, options are plain strings and the token's `password` kind makes it secret.
    expected = {
        setting["name"]: "string" if setting["kind"] == "options" else setting["kind"]
        for setting in definition()["settings"]
    }
    assert typed == {**expected, "token": "password"}
    project.meltano("config", "set", LOADER, "max_batch_age_seconds", "0.5")
    set_token = project.meltano("config", "set", LOADER, "token", "s3cret-value")
    assert "s3cret-value" not in set_token.stdout + set_token.stderr
    assert "TARGET_STITCH_IMPORT_TOKEN" in (project.root / ".env").read_text(encoding="utf-8")
    version = project.meltano("invoke", LOADER, "--version")
    assert version.stdout.startswith("target-stitch-import v"), version.describe()


# The repository's own meltano.yml (development): the demo stream into the emulator


def test_repository_project_loads_the_demo_into_the_emulator(
    meltano_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A copy of the checkout, run as its ``meltano.yml``'s header says (PyPI only, no git)."""
    root = tmp_path_factory.mktemp("repository") / "target-stitch-import"
    shutil.copytree(
        REPO_ROOT / "target_stitch_import",
        root / "target_stitch_import",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for name in ("setup.py", "setup.cfg", "README.md", "meltano.yml"):
        shutil.copy2(REPO_ROOT / name, root / name)
    project = MeltanoProject(meltano_bin, root)
    project.meltano("install")
    emulator = project.invoke_in_background(
        f"{LOADER}:serve", "--port", "0",  # the dev environment's 8765 may be taken here
        stdout=root / "serve.stdout",
        stderr=root / "serve.stderr",
    )  # fmt: skip
    try:
        project.meltano(
            "run", "tap-singer-jsonl", LOADER, env={"TARGET_STITCH_IMPORT_API_URL": emulator.url}
        )
        shown = project.meltano("invoke", f"{LOADER}:show", "customers", "--json")
    finally:
        emulator.stop()
    rows = {row["id"]: row["name"] for row in json.loads(shown.stdout)}
    assert rows == {1: "Finn the Human", 2: "Jake"}, "the stale replay must not win"
    state = project.state("dev:tap-singer-jsonl-to-target-stitch-import")
    assert state is not None
    assert state["singer_state"]["bookmarks"]["customers"]["replication_key_value"] == (
        "2026-11-22T09:00:00Z"
    )
