"""lit configuration: FileCheck tests of the axc tools (PATH/PYTHONPATH are set here)."""

import os
import sys

import lit.formats

config.name = "axc"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mlir", ".test"]
config.excludes = ["fixtures", "unit", "lit.cfg.py"]
config.test_source_root = os.path.dirname(__file__)

root = os.path.dirname(config.test_source_root)
bin_dir = os.path.dirname(sys.executable)
config.environment["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])
config.environment["PYTHONPATH"] = root
for name in ("HOME", "TMPDIR", "LANG", "LC_ALL"):
    if name in os.environ:
        config.environment[name] = os.environ[name]
config.substitutions.append(("%fixtures", os.path.join(config.test_source_root, "fixtures")))
config.substitutions.append(("%python", sys.executable))
config.substitutions.append((r"\bFileCheck\b", "filecheck"))
