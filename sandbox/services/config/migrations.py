"""Schema of config-service.

``config_history`` holds every version of every key (append-only); its
``seq`` is the change sequence the replicas' in-memory indexes catch up from.
``config_entries`` is the current state per key (a tombstone after a delete,
so versions keep growing when a key is re-created).
"""

from __future__ import annotations

from sandbox.services.kit.db import Migration

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "config entries and history",
        """
        CREATE TABLE config_history (
            seq         bigserial PRIMARY KEY,
            namespace   text        NOT NULL,
            key         text        NOT NULL,
            version     bigint      NOT NULL CHECK (version > 0),
            op          text        NOT NULL CHECK (op IN ('create', 'update', 'delete')),
            value       jsonb,
            changed_by  text        NOT NULL,
            changed_at  timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT config_history_version UNIQUE (namespace, key, version),
            CONSTRAINT config_history_value CHECK ((op = 'delete') = (value IS NULL))
        );

        CREATE TABLE config_entries (
            namespace   text        NOT NULL,
            key         text        NOT NULL,
            version     bigint      NOT NULL CHECK (version > 0),
            deleted     boolean     NOT NULL,
            changed_by  text        NOT NULL,
            changed_at  timestamptz NOT NULL,
            seq         bigint      NOT NULL REFERENCES config_history (seq),
            PRIMARY KEY (namespace, key)
        );
        CREATE INDEX config_entries_seq ON config_entries (seq);
        """,
    ),
)
