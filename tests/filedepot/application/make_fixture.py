"""Rebuild ``fixture/`` (a SQLite database and a files directory) with filedepot itself.

Run it by hand, with filedepot 0.12.0 in a virtual environment of its own (never the
project's)::

    python3 -m venv /tmp/filedepot-venv
    /tmp/filedepot-venv/bin/pip install filedepot==0.12.0 SQLAlchemy Pillow
    /tmp/filedepot-venv/bin/python tests/filedepot/application/make_fixture.py

It runs ``app.py create`` into ``fixture/``, then ``app.py check`` on a copy, so that the
application is proved against filedepot before sa_depot is tested with it.
"""

import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "fixture")
APP = os.path.join(HERE, "app.py")


def run(phase, directory):
    url = "sqlite:///" + os.path.join(directory, "app.sqlite")
    subprocess.run([sys.executable, APP, phase, url, os.path.join(directory, "files")], check=True)


if __name__ == "__main__":
    import depot  # noqa: F401  (this must run with filedepot, not sa_depot)

    shutil.rmtree(FIXTURE, ignore_errors=True)
    os.makedirs(FIXTURE)
    run("create", FIXTURE)
    with tempfile.TemporaryDirectory() as scratch:
        copy = os.path.join(scratch, "copy")
        shutil.copytree(FIXTURE, copy)
        run("check", copy)
    print("fixture written to", FIXTURE)
