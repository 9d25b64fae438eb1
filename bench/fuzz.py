"""Fuzz every reader: `python bench/fuzz.py --trials 10000 --jobs 2` (the same as `axc-fuzz`).

Prints, per reader, how many trials succeeded, were refused with one line, or were
findings (traceback, bad error, hang, crash), and the wall time.
"""

from __future__ import annotations

from axc.tools.axc_fuzz import main

if __name__ == "__main__":
    main()
