"""`make bench`: run every benchmark and print its figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    ["budget_processes.py", "--calls", "200", "--processes", "4", "--limit", "60", "--window", "6"],
    ["poll_cost.py", "--tabs", "10", "--seconds", "10"],
]

status = 0
for argv in BENCHMARKS:
    print(f"\n== {' '.join(argv)}", flush=True)
    status |= subprocess.call([sys.executable, str(HERE / argv[0]), *argv[1:]])
sys.exit(status)
