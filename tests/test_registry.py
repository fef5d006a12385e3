"""Provider discovery: built-in prefixes, register_provider, and entry points of installed packages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import llmkit
from llmkit.errors import ConfigurationError
from llmkit.providers.function import FunctionLLM
from llmkit.registry import known_providers, register_provider

PLUGIN = """
from llmkit.providers.function import FunctionLLM

def from_spec(rest, **kwargs):
    return FunctionLLM(complete_fn=lambda prompt, kw: f"plugin {rest}: {prompt}", **kwargs)
"""


def test_register_provider_in_code() -> None:
    register_provider("echo-test", lambda rest, **kw: FunctionLLM(complete_fn=lambda p, k: p[::-1], **kw))
    assert llmkit.create("echo-test/x").complete("abc").text == "cba"
    assert "echo-test" in known_providers()


def test_unknown_prefix_names_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"Known providers: .*openai-like"):
        llmkit.create("nope/model")


def test_an_installed_package_entry_point_is_found(tmp_path: Path) -> None:
    """A package declaring ``[project.entry-points."llmkit.providers"]`` (here a dist-info on the path, as pip
    leaves it) is found by create() and listed by ``llmkit models``, without registering anything in code."""
    (tmp_path / "myplugin").mkdir()
    (tmp_path / "myplugin" / "__init__.py").write_text(PLUGIN)
    dist = tmp_path / "myplugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[llmkit.providers]\nmyservice = myplugin:from_spec\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    code = "import llmkit; print(llmkit.create('myservice/big').complete('hi').text)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "plugin big: hi"
    listing = subprocess.run(
        [sys.executable, "-m", "llmkit.cli", "models"], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "myservice" in listing
