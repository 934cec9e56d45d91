"""The pytest plugin works for users as the README shows: installed via the
``pytest11`` entry point, with no conftest of theirs, in pytest-asyncio's strict
(default) and auto modes; without pytest-asyncio it stops with a usage error."""

from __future__ import annotations

import sys

import pytest

# A user's test file for strict mode: markers, and their own async fixture built
# on ours with pytest_asyncio.fixture (what strict mode requires).
STRICT_TESTS = """
import pytest
import pytest_asyncio
from wesog_async import WesogClient
from wesog_async.emulator import EmulatorConfig


@pytest_asyncio.fixture
async def uploaded(wesog_client):
    op = await (await wesog_client.images.create({"id": "u", "src": "https://x/u.jpg"}))
    return op


@pytest.mark.asyncio
async def test_my_upload(wesog_emulator):
    async with WesogClient(api_key=wesog_emulator.api_key, base_url=wesog_emulator.url) as client:
        op = await (await client.images.create({"id": "a", "src": "https://x/a.jpg"}))
    assert op.num_good == 1
    assert wesog_emulator.state.counters.snapshot()["items_applied"] == 1


@pytest.mark.asyncio
async def test_own_async_fixture(uploaded, wesog_client):
    assert uploaded.num_good == 1
    assert (await wesog_client.images.get("u")).image_id == "u"


@pytest.mark.asyncio
class TestOverride:
    @pytest.fixture
    def wesog_emulator_config(self):
        return EmulatorConfig(api_keys=("mine",), item_delay_ms=1.0)

    async def test_key(self, wesog_client, wesog_emulator):
        assert wesog_emulator.api_key == "mine"
        assert await wesog_client.ops.list() == []


def test_sync_tests_are_untouched():
    assert True
"""

# The same tests as a user in auto mode writes them: no markers, plain fixtures.
AUTO_TESTS = (
    STRICT_TESTS.replace("@pytest.mark.asyncio\n", "")
    .replace("import pytest_asyncio\n", "")
    .replace("@pytest_asyncio.fixture", "@pytest.fixture")
)

UNMARKED_TEST = """
async def test_forgot_the_marker(wesog_client):
    assert await wesog_client.ops.list() == []
"""

# Runs pytest as if pytest-asyncio (and pytest-aiohttp, which imports it) were not
# installed: their entry points are blocked and importing them fails.
WITHOUT_PYTEST_ASYNCIO = """
import sys


class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("pytest_asyncio", "pytest_aiohttp"):
            raise ImportError(f"No module named {name!r}")


sys.meta_path.insert(0, NotInstalled())
import pytest

sys.exit(pytest.main(["-p", "no:cacheprovider", "-p", "no:asyncio", "-p", "no:aiohttp"]))
"""

# Warnings are errors in the user's run: the plugin must not add any.
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\nfilterwarnings = error\n"


def test_strict_mode_with_markers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=STRICT_TESTS)
    pytester.makeini(INI)  # no asyncio_mode: pytest-asyncio's default, strict
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.stdout.re_match_lines([r"(?i)asyncio: mode=(Mode\.)?strict\b"])
    result.assert_outcomes(passed=4)


def test_auto_mode_without_markers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=AUTO_TESTS)
    pytester.makeini(INI + "asyncio_mode = auto\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.stdout.re_match_lines([r"(?i)asyncio: mode=(Mode\.)?auto\b"])
    result.assert_outcomes(passed=4)


def test_unmarked_async_test_in_strict_mode_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=UNMARKED_TEST)
    pytester.makeini(INI)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*test_user.py::test_forgot_the_marker*@pytest.mark.asyncio*asyncio_mode = auto*"]
    )
    result.assert_outcomes()  # nothing ran, nothing skipped


def test_without_pytest_asyncio_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=AUTO_TESTS)
    pytester.makeini("[pytest]\n")
    script = pytester.makepyfile(run_without=WITHOUT_PYTEST_ASYNCIO)
    result = pytester.run(sys.executable, str(script), "test_user.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    # ("?" stands for the brackets, which fnmatch reads as a character class.)
    hint = "*test_user.py::test_my_upload uses the Wesog fixtures*'wesog-async?testing?'*"
    result.stderr.fnmatch_lines([hint])


def test_pytest_asyncio_disabled_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=AUTO_TESTS)
    pytester.makeini("[pytest]\n")
    # pytest-aiohttp needs pytest-asyncio's options, so it goes too.
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:asyncio", "-p", "no:aiohttp"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*installed but not loaded*-p no:asyncio*"])


def test_without_pytest_asyncio_other_tests_still_run(pytester: pytest.Pytester) -> None:
    # The plugin is loaded in every pytest run of an environment with wesog-async
    # installed; it only objects when a test asks for its async fixtures.
    pytester.makepyfile(test_other="def test_plain():\n    assert 1 + 1 == 2\n")
    pytester.makeini("[pytest]\n")
    script = pytester.makepyfile(run_without=WITHOUT_PYTEST_ASYNCIO)
    result = pytester.run(sys.executable, str(script), "test_other.py")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1)
