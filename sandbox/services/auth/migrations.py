"""Schema of the auth database."""

from sandbox.services.kit.db import Migration

MIGRATIONS = [
    Migration(
        1,
        "users_and_signing_keys",
        """
        CREATE TABLE users (
            username      text PRIMARY KEY CHECK (username ~ '^[a-z][a-z0-9._-]{2,63}$'),
            password_hash text NOT NULL,
            roles         text[] NOT NULL CHECK (cardinality(roles) >= 1),
            disabled      boolean NOT NULL DEFAULT false,
            created_at    timestamptz NOT NULL DEFAULT now(),
            updated_at    timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE signing_keys (
            kid         text PRIMARY KEY,
            algorithm   text NOT NULL,
            private_key bytea NOT NULL,
            encrypted   boolean NOT NULL,
            public_jwk  jsonb NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            retired_at  timestamptz
        );
        """,
    ),
]
