"""Fixtures of tests/stress/test_security_module.py: the integration
harness's (tests/integration/conftest.py: a real coupecircuitd, a real Apache
with mod_coupecircuit), loaded from there so that both stay one code."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

sys.dont_write_bytecode = True
_INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
sys.path.insert(0, str(_INTEGRATION))

_spec = importlib.util.spec_from_file_location("coupecircuit_integration_conftest", _INTEGRATION / "conftest.py")
_integration = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_integration)

# Fixtures and hooks, re-exported under their names.
for _name in dir(_integration):
    if not _name.startswith("_") and _name not in ("annotations", "sys", "os", "Path", "pytest", "harness"):
        globals()[_name] = getattr(_integration, _name)
