"""Start-up cost: every chapter's kernel, the runner and its workers import jsonschema (through
nbformat: papermill, myst_nb's glue). helpers marks the optional rfc3987_syntax absent, whose
import alone builds a Lark grammar (about 2 s of CPU per process) for two formats nothing uses."""

import subprocess
import sys

CHECK = """
import sys, time
c = time.process_time()
import helpers, jsonschema, nbformat
from myst_nb import glue
glue("x", 1, display=False)
mod = sys.modules.get("rfc3987_syntax", "never imported")
print("absent" if mod is None or mod == "never imported" else "imported")
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
nbformat.validate(nb)  # nbformat's own schema still checks notebooks
print(round(time.process_time() - c, 2))
"""


def _run(code):
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return p.stdout.split()


def test_helpers_keeps_jsonschema_from_importing_rfc3987_syntax():
    state, _cpu = _run(CHECK)
    assert state == "absent"


def test_without_helpers_jsonschema_would_import_it():
    """The guard above is needed: in this environment jsonschema does import the module."""
    state = _run("import sys, jsonschema; print('imported' if sys.modules.get('rfc3987_syntax') else 'absent')")[0]
    assert state == "imported"


def test_the_schema_checks_still_check_formats():
    """The project's parameter schema uses format "regex", which jsonschema still checks."""
    import jsonschema
    import pytest

    checker = jsonschema.FormatChecker()
    assert "regex" in checker.checkers
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate("(unclosed", {"type": "string", "format": "regex"}, format_checker=checker)
