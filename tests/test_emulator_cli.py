"""The ``wesog-async emulator`` command and the ``wesog_emulator`` pytest fixture."""

from __future__ import annotations

import asyncio
import signal
import sys

import aiohttp
import pytest

from wesog_async.cli import build_parser, main
from wesog_async.emulator import EmulatorConfig, EmulatorServer


def test_help_lists_the_emulator(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "emulator" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["emulator", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--item-delay-ms" in out
    assert "--faults" in out


def test_emulator_arguments_parse() -> None:
    args = build_parser().parse_args(
        ["emulator", "--port", "0", "--api-key", "a", "--api-key", "b", "--workers", "3"]
    )
    assert (args.port, args.api_keys, args.workers) == (0, ["a", "b"], 3)


def test_bad_configuration_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulator", "--workers", "0"]) == 2
    assert "workers_per_tenant" in capsys.readouterr().err


@pytest.mark.slow
async def test_emulator_command_serves_until_ctrl_c() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wesog_async",
        "emulator",
        "--port",
        "0",
        "--api-key",
        "demo",
        "--item-delay-ms",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(20):
            first = (await proc.stdout.readline()).decode()
            assert first.startswith("Wesog emulator listening on http://127.0.0.1:")
            url = first.split()[4]
            hint = (await proc.stdout.readline()).decode()
            assert "curl -H 'API-Key: demo'" in hint
            async with (
                aiohttp.ClientSession(headers={"API-Key": "demo"}) as http,
                http.delete(url + "/imgs/a?wait=true") as resp,
            ):
                assert resp.status == 200
            proc.send_signal(signal.SIGINT)
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0


async def test_wesog_emulator_fixture(wesog_emulator: EmulatorServer) -> None:
    assert wesog_emulator.url.startswith("http://127.0.0.1:")
    assert wesog_emulator.api_key == wesog_emulator.config.api_keys[0]
    async with (
        aiohttp.ClientSession(headers={"API-Key": wesog_emulator.api_key}) as http,
        http.get(wesog_emulator.url + "/ops") as resp,
    ):
        assert resp.status == 200
    assert wesog_emulator.state.counters.requests["GET /ops"] == 1


class TestFixtureOverride:
    @pytest.fixture
    def wesog_emulator_config(self) -> EmulatorConfig:
        return EmulatorConfig(api_keys=("custom",), item_delay_ms=1.0)

    async def test_config_override(self, wesog_emulator: EmulatorServer) -> None:
        assert wesog_emulator.api_key == "custom"
        assert wesog_emulator.config.item_delay_ms == 1.0
