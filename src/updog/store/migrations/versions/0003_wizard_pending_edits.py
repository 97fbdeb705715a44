"""Entries typed in the setup wizard that the draft could not take, kept per user and step.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

A wizard step saves every field that is valid; a field that does not parse or breaks a draft
rule (a negative fund size, an investment period of 12 years, a fee tier that overlaps
another) keeps its last saved value in the draft. What the user typed for it is kept here,
so that a reload shows it again with its error instead of silently losing it. Rows belong to
one user (another analyst opening the step sees the draft, not someone's unfinished typing)
and go with the fund or the user. ``held`` lists the spec keys not saved (dotted paths such
as ``fees.tiers``), ``texts`` the form's texts under them, as typed.

New table only: the previous release of the app ignores it. The downgrade drops it (pending
entries are not part of any draft).
"""

from __future__ import annotations

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_UPGRADE = r"""
CREATE TABLE wizard_pending_edits (
    fund_id     uuid NOT NULL REFERENCES funds (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    step        text NOT NULL CHECK (step ~ '^[a-z][a-z_]{0,39}$'),
    held        jsonb NOT NULL CHECK (jsonb_typeof(held) = 'array' AND held <> '[]'::jsonb),
    texts       jsonb NOT NULL CHECK (jsonb_typeof(texts) = 'object'),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (fund_id, user_id, step)
);
CREATE INDEX wizard_pending_edits_user_idx ON wizard_pending_edits (user_id);
"""

_DOWNGRADE = """
DROP TABLE wizard_pending_edits;
"""


def upgrade() -> None:
    op.execute(_UPGRADE)


def downgrade() -> None:
    op.execute(_DOWNGRADE)
