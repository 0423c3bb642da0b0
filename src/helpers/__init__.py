"""helpers: the computing package behind the executable reproduction of
Shao, Iyer et al., Sci Rep 2022 (CD19 CAR T-cell response, bone-marrow signatures).

Notebooks stay thin and call into these modules; every module has unit tests in tests/.
"""

import sys as _sys

__version__ = "0.1.0"

# jsonschema (imported by nbformat, so by papermill, by myst_nb's glue in every chapter's kernel,
# and by the parameter checks) imports rfc3987_syntax when it is installed, only to check the
# "iri" and "iri-reference" formats, which no schema of this project or of nbformat uses. That
# import builds a Lark grammar and costs about 2 s of CPU in every process that imports
# jsonschema; marked absent, jsonschema skips those two formats (tests/test_bench_imports.py).
_sys.modules.setdefault("rfc3987_syntax", None)
