"""Direct uploads: the browser uploads straight to the object store, the row attaches the
result with a signed token (see docs/direct-uploads.md).

* :class:`DirectUploads` hands out upload slots for a mapped file field (presigned PUT,
  presigned POST with size and type conditions, presigned multipart parts) in the field's
  upload storage, each with a token;
* assigning the token (or the :class:`DirectUpload` of :meth:`DirectUploads.receive`) to the
  field attaches the staged object; the flush verifies it first (:mod:`sa_depot.direct.staging`);
* refused tokens raise :class:`~sa_depot.exceptions.UploadRefused`.
"""

from sa_depot.direct.slots import DEFAULT_EXPIRES_IN, DirectUploads, UploadSlot
from sa_depot.direct.tokens import DirectUpload

__all__ = ["DEFAULT_EXPIRES_IN", "DirectUpload", "DirectUploads", "UploadSlot"]
