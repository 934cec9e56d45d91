"""The README's Python examples run as written against the emulator."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from wesog_async.emulator import EmulatorConfig, EmulatorServer

README = Path(__file__).resolve().parent.parent / "README.md"


def runnable_blocks() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    return [b for b in blocks if "asyncio.run(" in b]


def test_readme_has_a_runnable_quick_start() -> None:
    assert runnable_blocks()


@pytest.mark.parametrize("block", runnable_blocks())
async def test_readme_block_runs(block: str) -> None:
    config = EmulatorConfig(api_keys=("demo",), item_delay_ms=1)
    async with EmulatorServer(config, host="127.0.0.1", port=0) as server:
        env = {**os.environ, "WESOG_API_KEY": "demo", "WESOG_BASE_URL": server.url}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", block, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    if "accepted:" in block:
        readme = README.read_text(encoding="utf-8")
        for line in text.splitlines():
            assert line in readme, f"README output is stale: {line!r}"
