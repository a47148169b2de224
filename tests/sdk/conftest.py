"""One local Ray per test process for the modules that need one (sdk batch, sdk serve).

Session-scoped, so pytest-xdist workers that run tests of both modules start Ray once;
pytest tears a module's own fixtures (the Serve apps) down before the next module's tests
run, so the batch actors never wait for CPUs a Serve replica holds.
"""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def local_ray():
    """A local Ray (4 logical CPUs on any machine, small object store, no dashboard);
    yields its GCS address for CLI runs that join it with ``--address``."""
    ray = pytest.importorskip("ray", reason="needs the scale extra (ray[data,serve])")
    ray.init(num_cpus=4, include_dashboard=False, object_store_memory=200 * 1024**2,
             log_to_driver=False, logging_level="WARNING")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
