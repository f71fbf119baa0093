"""Versioned schema migrations, applied in order at start-up and recorded in ``schema_migrations``.

A migration is ``sinks/migrations/NNNN_name.sql``: statements separated by a ``;`` that ends a line,
whole-line ``--`` comments. Statements must be idempotent (``IF NOT EXISTS``, ``OR REPLACE``): a migration is
recorded only after all its statements ran, so one that failed half-way runs again from the top. An applied
migration must never change: its checksum is compared on every start and a mismatch stops the sink.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from clickhouse_connect.driver.client import Client

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
TABLE = "schema_migrations"
_FILE_NAME = re.compile(r"^(\d{4})_(\w+)\.sql$")
_CREATE_TABLE = f"""CREATE TABLE IF NOT EXISTS {TABLE}
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY version"""
# ReplacingMergeTree: two sinks starting together may both record a version; the copies collapse.


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()

    @property
    def statements(self) -> list[str]:
        statements: list[str] = []
        current: list[str] = []
        for line in self.sql.splitlines():
            if not current and (not line.strip() or line.lstrip().startswith("--")):
                continue
            current.append(line)
            if line.rstrip().endswith(";"):
                statements.append("\n".join(current).rstrip().rstrip(";").rstrip())
                current = []
        if "".join(current).strip():
            raise MigrationError(
                f"migration {self.version:04d}_{self.name}: last statement does not end with ;"
            )
        return statements


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path}: migration files are named NNNN_name.sql")
        version = int(match.group(1))
        if version in migrations:
            raise MigrationError(f"{path}: version {version} is used twice")
        migrations[version] = Migration(version, match.group(2), path.read_text(encoding="utf-8"))
    return [migrations[v] for v in sorted(migrations)]


def applied_migrations(client: Client) -> dict[int, tuple[str, str]]:
    """version -> (name, checksum) of what the database has applied."""
    client.command(_CREATE_TABLE)
    rows = client.query(f"SELECT version, name, checksum FROM {TABLE} FINAL").result_rows
    return {int(version): (name, checksum) for version, name, checksum in rows}


def migrate(client: Client, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply the migrations the database lacks; return them. Raises ``MigrationError`` before applying
    anything when an applied migration was edited or is unknown to this code (the database is ahead of it)."""
    migrations = migration_files(directory)
    applied = applied_migrations(client)
    by_version = {m.version: m for m in migrations}
    for version, (name, checksum) in sorted(applied.items()):
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(
                f"database has migration {version:04d}_{name}, which this code does not know"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"migration {version:04d}_{name} changed after it was applied "
                f"(checksum {checksum[:12]} in the database, {migration.checksum[:12]} in the file); "
                "write a new migration instead of editing an applied one"
            )
    done: list[Migration] = []
    for migration in migrations:
        if migration.version in applied:
            continue
        for statement in migration.statements:
            client.command(statement)
        client.insert(
            TABLE,
            [[migration.version, migration.name, migration.checksum, datetime.now(UTC)]],
            column_names=["version", "name", "checksum", "applied_at"],
        )
        done.append(migration)
    return done
