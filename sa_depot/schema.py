"""sa_depot's own tables (the file registry, the removal journal, adoption progress).

Kept at this path for applications that name it (``from sa_depot.schema import metadata``);
the tables are defined in :mod:`sa_depot.database.schema`, whose documentation says what each
one holds. Create them with sa_depot's Alembic migration or ``metadata.create_all(engine)``.
"""

from sa_depot.database.schema import (
    adoptions,
    attachments,
    files,
    metadata,
    pending_removals,
    promotions,
)

__all__ = ["adoptions", "attachments", "files", "metadata", "pending_removals", "promotions"]
