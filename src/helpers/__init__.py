"""helpers: the computing package behind the executable reproduction of
Shao, Iyer et al., Sci Rep 2022 (CD19 CAR T-cell response, bone-marrow signatures).

Notebooks stay thin and call into these modules; every module has unit tests in tests/.
"""

__version__ = "0.1.0"
