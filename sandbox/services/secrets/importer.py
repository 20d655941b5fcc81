"""Import key pairs from ``KRAKEN_CREDENTIALS_DIR`` at start-up (idempotent).

Each ``*.json`` file in the directory holds one object or a list of objects::

    {"account": "main", "label": "venue-sim", "api_key": "...", "private_key": "<base64>",
     "permissions": ["query_funds", "trade"]}

A key pair whose API key the account already holds is skipped, so every
replica may run the import at every start. Problems are logged by file name
and field, never with values.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict, ValidationError

from sandbox.services.kit.errors import ServiceError
from sandbox.services.secrets import crypto, store
from sandbox.services.secrets.models import Account, KrakenKeyCreate

log = logging.getLogger("sandbox.services.secrets.importer")

IMPORT_ACTOR = store.Actor("system:kraken-credentials-dir", "system")
MAX_FILE_BYTES = 1_048_576


class ImportEntry(KrakenKeyCreate):
    """One key pair in a credentials file: the create body plus its account."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    account: Account


class ImportReport(BaseModel):
    """What an import did."""

    imported: int = 0
    skipped: int = 0
    invalid: int = 0


def _where(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_input=False))


def read_entries(path: Path) -> tuple[list[ImportEntry], int]:
    """The valid entries of one file and how many were invalid (problems are logged)."""
    if path.stat().st_size > MAX_FILE_BYTES:
        log.warning("credentials file too large, skipped", extra={"file": path.name})
        return [], 1
    try:
        doc: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("credentials file unreadable, skipped", extra={"file": path.name, "error": type(exc).__name__})
        return [], 1
    raw = doc if isinstance(doc, list) else [doc]
    entries, invalid = [], 0
    for index, item in enumerate(raw):
        try:
            entries.append(ImportEntry.model_validate(item))
        except ValidationError as exc:
            invalid += 1
            log.warning("invalid credentials entry, skipped",
                        extra={"file": path.name, "index": index, "problems": _where(exc)})
    return entries, invalid


async def import_dir(pool: asyncpg.Pool, ring: crypto.KeyRing, directory: Path | None) -> ImportReport:
    """Import every ``*.json`` file of ``directory`` (absent directory: nothing to do)."""
    report = ImportReport()
    if directory is None or not directory.is_dir():
        return report
    for path in sorted(directory.glob("*.json")):
        entries, invalid = read_entries(path)
        report.invalid += invalid
        for entry in entries:
            body = KrakenKeyCreate.model_validate(entry.model_dump(exclude={"account"}) | {
                "api_key": entry.api_key.get_secret_value(), "private_key": entry.private_key.get_secret_value()})
            try:
                created = await store.create_key(pool, ring, entry.account, body, IMPORT_ACTOR,
                                                 action="key.import", if_absent=True)
            except ServiceError as exc:
                report.invalid += 1
                log.warning("credentials entry not imported",
                            extra={"file": path.name, "account": entry.account, "reason": exc.code})
                continue
            if created is None:
                report.skipped += 1
            else:
                report.imported += 1
    log.info("kraken credentials imported", extra={"directory": str(directory), **report.model_dump()})
    return report
