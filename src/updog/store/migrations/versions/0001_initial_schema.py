"""Initial schema: accounts, funds and their versions, results, jobs, protection and audit.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Conventions: ids are UUIDs (``gen_random_uuid()``, built into PostgreSQL ≥ 13), timestamps are
``timestamptz`` (UTC), JSON is ``jsonb``, enumerations are ``text`` with a CHECK (cheaper to
evolve than PostgreSQL enums). Tables a later issue deepens (jobs, idempotency_keys,
audit_log, companies, investments, feature_flags) start with the columns they surely need.
"""

from __future__ import annotations

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_UPGRADE = r"""
CREATE FUNCTION updog_forbid_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'rows of % are immutable', TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TABLE organisations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX organisations_name_key ON organisations (lower(name));

CREATE TABLE users (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id         uuid NOT NULL REFERENCES organisations (id) ON DELETE RESTRICT,
    email          text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    password_hash  text NOT NULL,
    role           text NOT NULL CHECK (role IN ('viewer', 'analyst', 'admin')),
    display_name   text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    last_login_at  timestamptz,
    disabled_at    timestamptz
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_org_id_idx ON users (org_id);

CREATE TABLE api_tokens (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          text NOT NULL DEFAULT '' CHECK (length(name) <= 100),
    token_hash    text NOT NULL CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    prefix        text NOT NULL CHECK (length(prefix) <= 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    expires_at    timestamptz,
    revoked_at    timestamptz
);
CREATE UNIQUE INDEX api_tokens_token_hash_key ON api_tokens (token_hash);
CREATE INDEX api_tokens_user_id_idx ON api_tokens (user_id);

CREATE TABLE sessions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash    text NOT NULL CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz
);
CREATE UNIQUE INDEX sessions_token_hash_key ON sessions (token_hash);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);

CREATE TABLE funds (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id             uuid NOT NULL REFERENCES organisations (id) ON DELETE RESTRICT,
    created_by         uuid REFERENCES users (id) ON DELETE SET NULL,
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    draft_version      integer NOT NULL DEFAULT 1 CHECK (draft_version >= 1),
    published_version  integer CHECK (published_version BETWEEN 1 AND draft_version),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
-- keyset pagination of an organisation's funds, newest first
CREATE INDEX funds_org_page_idx ON funds (org_id, created_at DESC, id DESC);

CREATE TABLE fund_versions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    fund_id       uuid NOT NULL REFERENCES funds (id) ON DELETE CASCADE,
    version       integer NOT NULL CHECK (version >= 1),
    kind          text NOT NULL CHECK (kind IN ('draft', 'published')),
    spec          jsonb NOT NULL CHECK (jsonb_typeof(spec) = 'object'),
    spec_hash     text NOT NULL CHECK (spec_hash ~ '^[0-9a-f]{64}$'),
    created_by    uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    published_at  timestamptz,
    CONSTRAINT fund_versions_fund_version_key UNIQUE (fund_id, version),
    CONSTRAINT fund_versions_published_at CHECK ((kind = 'published') = (published_at IS NOT NULL))
);

CREATE TABLE forecasts (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    fund_version_id  uuid NOT NULL REFERENCES fund_versions (id) ON DELETE CASCADE,
    engine_version   text NOT NULL,
    spec_hash        text NOT NULL,
    result           jsonb NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT forecasts_version_engine_key UNIQUE (fund_version_id, engine_version)
);
CREATE TRIGGER forecasts_immutable BEFORE UPDATE ON forecasts
    FOR EACH ROW EXECUTE FUNCTION updog_forbid_update();

CREATE TABLE simulations (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id           uuid NOT NULL REFERENCES organisations (id) ON DELETE RESTRICT,
    fund_id          uuid NOT NULL REFERENCES funds (id) ON DELETE CASCADE,
    fund_version_id  uuid NOT NULL REFERENCES fund_versions (id) ON DELETE CASCADE,
    created_by       uuid REFERENCES users (id) ON DELETE SET NULL,
    runs             integer NOT NULL CHECK (runs >= 1),
    seed             numeric(40, 0) NOT NULL CHECK (seed >= 0),
    params           jsonb NOT NULL DEFAULT '{}'::jsonb,
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    progress         double precision NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
    engine_version   text NOT NULL,
    spec_hash        text NOT NULL,
    result           jsonb,
    error            jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    CONSTRAINT simulations_result_iff_succeeded
        CHECK ((status = 'succeeded') = (result IS NOT NULL))
);
CREATE INDEX simulations_org_page_idx ON simulations (org_id, created_at DESC, id DESC);
CREATE INDEX simulations_fund_idx ON simulations (fund_id, created_at DESC);

CREATE TABLE jobs (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind              text NOT NULL,
    org_id            uuid REFERENCES organisations (id) ON DELETE CASCADE,
    simulation_id     uuid REFERENCES simulations (id) ON DELETE CASCADE,
    payload           jsonb NOT NULL DEFAULT '{}'::jsonb,
    status            text NOT NULL DEFAULT 'queued'
                      CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    priority          smallint NOT NULL DEFAULT 0,
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts      integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    run_after         timestamptz NOT NULL DEFAULT now(),
    leased_by         text,
    lease_expires_at  timestamptz,
    heartbeat_at      timestamptz,
    progress          double precision NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
    cancel_requested  boolean NOT NULL DEFAULT false,
    last_error        text,
    result            jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz
);
CREATE INDEX jobs_ready_idx ON jobs (priority DESC, run_after, created_at) WHERE status = 'queued';
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE status = 'running';

CREATE TABLE idempotency_keys (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    scope             text NOT NULL,
    method            text NOT NULL,
    path              text NOT NULL,
    key               text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash      text NOT NULL,
    status            text NOT NULL DEFAULT 'in_progress'
                      CHECK (status IN ('in_progress', 'completed')),
    locked_at         timestamptz,
    response_status   smallint,
    response_headers  jsonb,
    response_body     bytea,
    created_at        timestamptz NOT NULL DEFAULT now(),
    completed_at      timestamptz,
    expires_at        timestamptz NOT NULL DEFAULT now() + interval '24 hours',
    CONSTRAINT idempotency_keys_scope_key UNIQUE (scope, method, path, key)
);
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);

CREATE TABLE audit_log (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at     timestamptz NOT NULL DEFAULT now(),
    org_id          uuid,
    actor_user_id   uuid,
    actor_token_id  uuid,
    action          text NOT NULL,
    target_type     text,
    target_id       text,
    details         jsonb NOT NULL DEFAULT '{}'::jsonb,
    request_id      text,
    prev_hash       text,
    entry_hash      text
);
CREATE INDEX audit_log_org_idx ON audit_log (org_id, occurred_at);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_user_id);

CREATE TABLE companies (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id      uuid NOT NULL REFERENCES organisations (id) ON DELETE RESTRICT,
    fund_id     uuid NOT NULL REFERENCES funds (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    stage       text,
    sector      text,
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'exited', 'failed')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX companies_fund_idx ON companies (org_id, fund_id);

CREATE TABLE investments (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id       uuid NOT NULL REFERENCES organisations (id) ON DELETE RESTRICT,
    fund_id      uuid NOT NULL REFERENCES funds (id) ON DELETE CASCADE,
    company_id   uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('initial', 'follow_on')),
    round        text,
    invested_on  date NOT NULL,
    amount       numeric(20, 2) NOT NULL CHECK (amount >= 0),
    ownership    numeric(9, 8) CHECK (ownership BETWEEN 0 AND 1),
    post_money   numeric(20, 2) CHECK (post_money >= 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX investments_company_idx ON investments (company_id);
CREATE INDEX investments_fund_idx ON investments (org_id, fund_id);

CREATE TABLE feature_flags (
    key              text PRIMARY KEY CHECK (key ~ '^[a-z0-9][a-z0-9_.-]{0,99}$'),
    enabled          boolean NOT NULL DEFAULT false,
    rollout_percent  numeric(5, 2) NOT NULL DEFAULT 100 CHECK (rollout_percent BETWEEN 0 AND 100),
    description      text NOT NULL DEFAULT '',
    updated_at       timestamptz NOT NULL DEFAULT now(),
    updated_by       uuid REFERENCES users (id) ON DELETE SET NULL
);
"""

_DOWNGRADE = """
DROP TABLE feature_flags;
DROP TABLE investments;
DROP TABLE companies;
DROP TABLE audit_log;
DROP TABLE idempotency_keys;
DROP TABLE jobs;
DROP TABLE simulations;
DROP TABLE forecasts;
DROP TABLE fund_versions;
DROP TABLE funds;
DROP TABLE sessions;
DROP TABLE api_tokens;
DROP TABLE users;
DROP TABLE organisations;
DROP FUNCTION updog_forbid_update();
"""


def upgrade() -> None:
    op.execute(_UPGRADE)


def downgrade() -> None:
    op.execute(_DOWNGRADE)
