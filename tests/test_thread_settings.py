"""Process-wide state the service relies on: the model's cores, numpy's BLAS threads, a frozen start-up heap.

FAISS's OpenMP calls bind to torch's OpenMP runtime when torch is loaded first, so a
`faiss.omp_set_num_threads(1)` at import once made every later `model.encode` in the importing
thread single-threaded, which halved the benchmark's raw encode rate and inflated the ingest ratio.
"""

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest
from threadpoolctl import threadpool_info

from benchmarks import ingest

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


def test_ingest_benchmark_reports_a_ratio_of_rates_measured_at_full_threads() -> None:
    result = ingest.run(128)
    assert result["memories"] == 128 and result["service_rate"] > 0 and result["raw_rate"] > 0
    # The ratio is taken before the rates are rounded for display, so allow for that rounding.
    assert result["ratio"] == pytest.approx(result["service_rate"] / result["raw_rate"], abs=2e-3)
    # Raw encoding ran on the threads a fresh interpreter gives torch, not fewer.
    fresh = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.get_num_threads())"], capture_output=True, text=True
    )
    assert result["raw_threads"] == int(fresh.stdout)


def test_the_start_up_heap_is_frozen(runtime) -> None:  # type: ignore[no-untyped-def]
    """Full garbage collections must not walk the libraries' and the model's objects (app.runtime)."""
    assert gc.get_freeze_count() > 100_000


def test_numpy_blas_runs_on_one_thread(runtime) -> None:  # type: ignore[no-untyped-def]
    """OpenBLAS's pool spin-waits after each small product on the cores the model needs (app.runtime)."""
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas and all(pool["num_threads"] == 1 for pool in blas)
