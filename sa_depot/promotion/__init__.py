"""Two-stage storage: uploads land in a private queue storage and are promoted to a public
one after the commit, processed on the way (see docs/promotion.md).

::

    class Photo(Base):
        __tablename__ = "photos"
        id: Mapped[int] = mapped_column(primary_key=True)
        image: Mapped[UploadedFile | None] = mapped_column(
            UploadedFileField(
                upload_storage="queue",  # fast and private: local disk, say
                promote_to="public",  # where the processed file goes (S3, say)
                filters=[WithThumbnailFilter((128, 128))],  # run at the promotion
            )
        )

* :mod:`sa_depot.promotion.job`: one promotion (:func:`promote`), the retry policy
  (:func:`configure`);
* :mod:`sa_depot.promotion.embedded`: the default executor, worker threads in the process;
* :mod:`sa_depot.promotion.dramatiq`: the executor for Dramatiq workers (extra
  ``sa-depot[dramatiq]``);
* :mod:`sa_depot.orm.promotions`: where the lifecycle sends what a commit journaled
  (:func:`set_executor`);
* :mod:`sa_depot.database.promotions`: the journal, ``sa_depot_promotions``;
* :mod:`sa_depot.workbench`: the scratch directory filters run in.
"""

from sa_depot.database.promotions import FAILED, QUEUED, Promotion, listing, retry_failed
from sa_depot.orm.promotions import PromotionExecutor, executor, set_executor, shutdown
from sa_depot.promotion.embedded import EmbeddedExecutor
from sa_depot.promotion.job import (
    Outcome,
    Policy,
    configure,
    is_queued,
    policy,
    promote,
    reset,
    run,
)

__all__ = [
    "FAILED",
    "QUEUED",
    "EmbeddedExecutor",
    "Outcome",
    "Policy",
    "Promotion",
    "PromotionExecutor",
    "configure",
    "executor",
    "is_queued",
    "listing",
    "policy",
    "promote",
    "reset",
    "retry_failed",
    "run",
    "set_executor",
    "shutdown",
]
