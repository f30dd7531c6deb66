"""The portal over real HTTP (uvicorn on a free port, httpx): pages, forms, the core behind them."""

from __future__ import annotations

import httpx
import pytest

from tests.web_support import WebEnv, start_web_env


@pytest.fixture
def web(duban_env):
    found = start_web_env(duban_env)
    yield found
    found.server.stop()


def test_unit_page_lists_the_units_obligations(web: WebEnv):
    page = httpx.get(web.unit_link("town-00"))
    assert page.status_code == 200, page.text
    assert "第0镇人民政府" in page.text
    assert "报送实施方案" in page.text
