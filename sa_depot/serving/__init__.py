"""The parts of :class:`~sa_depot.middleware.DepotMiddleware`, one concern per module.

* :mod:`~sa_depot.serving.policy`: :class:`ServingPolicy`, how one storage's files are served;
* :mod:`~sa_depot.serving.urls`: file URLs that agree with the served path under any mount;
* :mod:`~sa_depot.serving.signing`: signed, expiring URLs;
* :mod:`~sa_depot.serving.conditional`: ETag, Last-Modified and conditional requests;
* :mod:`~sa_depot.serving.ranges`: which byte ranges a request gets;
* :mod:`~sa_depot.serving.representation`: Content-Type, Content-Disposition and the sandbox,
  decided once for every path a download takes;
* :mod:`~sa_depot.serving.body`: response bodies read in bounded chunks;
* :mod:`~sa_depot.serving.responder`: all of the above, turned into a response.
"""

from sa_depot.serving.policy import AuthorizationHook, ServingPolicy
from sa_depot.serving.representation import DEFAULT_INLINE_TYPES

__all__ = ["DEFAULT_INLINE_TYPES", "AuthorizationHook", "ServingPolicy"]
