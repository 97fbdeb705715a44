"""Published versions numbered 1, 2, 3 … per fund, apart from the draft's revisions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03

Until now a fund had one counter: every saved draft (each wizard autosave) made a new
revision (``fund_versions.version``, ``funds.draft_version``) and publishing pointed
``funds.published_version`` at the revision published, so a first publication could be
"version 8". This revision adds ``fund_versions.publication_number``: 1 for the fund's first
publication, 2 for the second, … — the number users see as the *published version*.

Expand only, so the previous release of the app keeps working on this schema (SPEC §6.10):
the existing columns keep their meaning — ``fund_versions.version`` and
``funds.draft_version`` count draft revisions, ``funds.published_version`` names the
*revision* that is published (the repository calls it ``published_revision``). The number is
assigned by a trigger when a revision becomes published, whichever release publishes it;
both lock the fund row first (``SELECT … FOR UPDATE``), so numbers are handed out in order,
and a UNIQUE constraint makes a duplicate impossible anyway.

Existing data: the published revisions of each fund are numbered 1..n in revision order (the
order they were published in), and stored simulations of a published version record its
number in ``params.published_version`` as new ones do. The downgrade drops the number (it is
derived from the revision order, so nothing else is lost).
"""

from __future__ import annotations

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_UPGRADE = r"""
ALTER TABLE fund_versions ADD COLUMN publication_number integer;

UPDATE fund_versions v SET publication_number = n.number
FROM (
    SELECT id, row_number() OVER (PARTITION BY fund_id ORDER BY version) AS number
    FROM fund_versions WHERE kind = 'published'
) n
WHERE v.id = n.id;

UPDATE simulations s
SET params = s.params || jsonb_build_object('published_version', v.publication_number)
FROM fund_versions v
WHERE v.id = s.fund_version_id AND s.params ->> 'kind' = 'published';

ALTER TABLE fund_versions
    ADD CONSTRAINT fund_versions_publication_number_positive CHECK (publication_number >= 1),
    ADD CONSTRAINT fund_versions_publication_number_iff_published
        CHECK ((kind = 'published') = (publication_number IS NOT NULL)),
    ADD CONSTRAINT fund_versions_fund_publication_key UNIQUE (fund_id, publication_number);

COMMENT ON COLUMN fund_versions.version IS
    'Draft revision: 1 when the fund is created, +1 with every saved change of the draft.';
COMMENT ON COLUMN fund_versions.publication_number IS
    'Published version: 1 for the fund''s first publication, 2 for the second, ...; '
    'null for a revision never published. Set by updog_number_publication().';
COMMENT ON COLUMN funds.draft_version IS 'Draft revision of the current draft.';
COMMENT ON COLUMN funds.published_version IS
    'Draft revision (fund_versions.version) that is published, or null; its published '
    'version number is that row''s publication_number.';

CREATE FUNCTION updog_number_publication() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind = 'published' AND NEW.publication_number IS NULL THEN
        SELECT coalesce(max(publication_number), 0) + 1 INTO NEW.publication_number
        FROM fund_versions WHERE fund_id = NEW.fund_id;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER fund_versions_number_publication BEFORE INSERT OR UPDATE OF kind ON fund_versions
    FOR EACH ROW EXECUTE FUNCTION updog_number_publication();
"""

_DOWNGRADE = """
DROP TRIGGER fund_versions_number_publication ON fund_versions;
DROP FUNCTION updog_number_publication();
UPDATE simulations SET params = params - 'published_version' WHERE params ? 'published_version';
COMMENT ON COLUMN fund_versions.version IS NULL;
COMMENT ON COLUMN funds.draft_version IS NULL;
COMMENT ON COLUMN funds.published_version IS NULL;
ALTER TABLE fund_versions DROP COLUMN publication_number;
"""


def upgrade() -> None:
    op.execute(_UPGRADE)


def downgrade() -> None:
    op.execute(_DOWNGRADE)
