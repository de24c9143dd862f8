"""What every ``tfxformers demo`` does after its pipeline: find the pushed versions, serve them with the proxy in
front, and stop both, also when the part in between fails (``tfxformers.demo.common``)."""
from __future__ import annotations

import httpx
import pytest

# The demos' own Python; the server and proxy it starts are tested on both stacks elsewhere.
pytestmark = pytest.mark.once


@pytest.fixture(scope="module")
def model_base(trained_dir, tmp_path_factory):
    from tfxformers.cli import main

    base = tmp_path_factory.mktemp("demo_models")
    assert main(["export", "--model", str(trained_dir), "--name", "sentiment", "--model-base", str(base)]) == 0
    return base


def test_no_pushed_version_is_one_clear_error(tmp_path):
    from tfxformers.demo.common import pushed_versions
    from tfxformers.errors import UserError

    with pytest.raises(UserError, match=r"pushed no version to .*/sentiment \(not blessed\)"):
        pushed_versions(str(tmp_path), "sentiment", 1.0, " (not blessed)")


def test_the_demo_serves_through_the_proxy_and_stops_both_even_when_its_block_fails(model_base, capsys):
    from tfxformers.demo.common import pushed_versions, served

    assert pushed_versions(str(model_base), "sentiment", 1.0) == [1]
    with pytest.raises(RuntimeError, match="the block failed"):
        with served(str(model_base), "sentiment") as ports:
            reply = httpx.post(f"{ports.proxy_url}/v1/models/sentiment:classify", json={"texts": ["good fun"]},
                               timeout=30)
            assert reply.status_code == 200, reply.text
            assert reply.json()["results"][0]["label"] in ("neg", "pos")
            status = httpx.get(f"http://127.0.0.1:{ports.rest_port}/v1/models/sentiment", timeout=10).json()
            assert status["model_version_status"][0]["state"] == "AVAILABLE"
            raise RuntimeError("the block failed")
    for url in (f"{ports.proxy_url}/healthz", f"http://127.0.0.1:{ports.rest_port}/v1/models/sentiment"):
        with pytest.raises(httpx.TransportError):
            httpx.get(url, timeout=5)
    assert f"REST 127.0.0.1:{ports.rest_port}" in capsys.readouterr().out
