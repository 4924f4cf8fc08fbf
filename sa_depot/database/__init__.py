"""What sa_depot keeps in your database, and the jobs that need no ORM.

* :mod:`~sa_depot.database.schema`: sa_depot's own tables;
* :mod:`~sa_depot.database.provision`: creating them when they are missing;
* :mod:`~sa_depot.database.registry`: the file registry (which rows use which files);
* :mod:`~sa_depot.database.journal`: the removal journal;
* :mod:`~sa_depot.database.references`: when two paths name one file, and the column check
  for files the registry does not know;
* :mod:`~sa_depot.database.collector`: the collector.

The session lifecycle (:mod:`sa_depot.orm`) builds on these; none of them imports it.
"""
