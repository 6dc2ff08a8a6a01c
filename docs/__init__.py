"""Makes docs/ a package, so that its conftest.py is imported as docs.conftest and does
not shadow tests/conftest.py (tests import helpers from it by the name ``conftest``)."""
