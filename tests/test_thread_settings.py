"""Libraries sharing the process must not change how many cores the model encodes on.

FAISS's OpenMP calls bind to torch's OpenMP runtime when torch is loaded first, so a
`faiss.omp_set_num_threads(1)` at import once made every later `model.encode` in the importing
thread single-threaded, which halved the benchmark's raw encode rate and inflated the ingest ratio.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_importing_the_service_leaves_torch_threads_alone() -> None:
    code = (
        "import torch; before = torch.get_num_threads(); "
        "import app.main, app.runtime, benchmarks.cli, retrieval.faiss_index; "
        "print(before, torch.get_num_threads())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, env=os.environ.copy()
    )
    assert result.returncode == 0, result.stderr
    before, after = result.stdout.split()
    assert after == before
