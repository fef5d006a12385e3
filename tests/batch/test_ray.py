"""A batch job on a local Ray cluster (extra ``ray``): the same records as on one machine, resume included, with
the budget held by one gate actor for every worker."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import llmkit.batch
from llmkit.providers.openai import OpenAILike
from tests.batch.test_runner import write_input
from tests.servers.fault import FaultServer

ray = pytest.importorskip("ray", reason="the 'ray' extra is not installed: pip install 'llmkit[ray]'")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    # Workers are new processes: they find llmkit (and this checkout) through PYTHONPATH.
    path = os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": path}}, log_to_driver=False)
    yield
    ray.shutdown()


def by_id(path: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for line in path.read_bytes().splitlines():
        record = json.loads(line)
        assert record["custom_id"] not in out, f"duplicate {record['custom_id']}"
        out[record["custom_id"]] = record
    return out


@pytest.mark.usefixtures("ray_cluster")
def test_ray_run_writes_the_same_records_as_local_mode_and_resumes(fault_server: FaultServer, tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", 300)
    with source.open("a") as extra:
        extra.write("{broken\n")
    llm = OpenAILike(model="echo", api_base=fault_server.url)
    local = llmkit.batch.run(source, tmp_path / "local.jsonl", llm, concurrency=8)
    assert local.succeeded == 300
    assert local.failed == 1

    # A Ray run that resumes a crashed one: the first 100 records are there, the last one cut short.
    lines = (tmp_path / "local.jsonl").read_bytes().splitlines(keepends=True)
    (tmp_path / "ray.jsonl").write_bytes(b"".join(lines[:100]) + lines[100][:20])
    result = llmkit.batch.run(source, tmp_path / "ray.jsonl", llm, concurrency=8, ray=True, budget=100)
    assert result.skipped == 100
    assert result.succeeded + result.failed == 201
    assert result.complete
    assert by_id(tmp_path / "ray.jsonl") == by_id(tmp_path / "local.jsonl")
