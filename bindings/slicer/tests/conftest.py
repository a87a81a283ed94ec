import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_BINDINGS = _HERE.parents[1]
# The Slicer-free logic module, the Python package from this checkout and the shared test support.
for path in (_HERE.parent / "NnunetRt", _BINDINGS / "python", _BINDINGS / "python" / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
