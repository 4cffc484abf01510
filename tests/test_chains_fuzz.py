"""Garbage at the e-mail chains' entry points: the unsubscribe page over real HTTP, the catalog files, the
"write, don't call" field. Never a traceback or a 5xx; every refusal says why."""

from __future__ import annotations

import shutil
import string
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from dialer.chains.catalog import PACKAGED_CATALOG, CatalogError, load_catalog
from dialer.chains.web import unsubscribe_router
from dialer.web.server import ServerThread
from fastapi import FastAPI
from kernel.clock import SystemClock
from leads.contact import wants_email

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                           max_leaves=8)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["write_instead", "contact_by", "other"]), json_values))
def test_wants_email_takes_any_json_without_failing(extra):
    assert wants_email(extra) in (True, False)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from kernel.db.engine import Database
    from kernel.db.migrate import upgrade
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'd.db'}")
    upgrade(db)
    app = FastAPI()
    app.include_router(unsubscribe_router(db, SystemClock()))
    with ServerThread(app) as running:
        yield running
    db.dispose()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(token=st.text(alphabet=string.printable + "ёЖ€\u202e", min_size=1, max_size=300),
       body=st.binary(max_size=200), post=st.booleans())
def test_the_unsubscribe_page_answers_garbage_with_a_page_never_a_5xx(server, token, body, post):
    url = f"{server.url}/unsubscribe/{quote(token, safe='')}"
    response = (httpx.post(url, content=body, timeout=30) if post else httpx.get(url, timeout=30))
    assert response.status_code in (404, 405, 422, 200, 307, 308), response.text
    assert response.status_code < 500
    if response.status_code == 404 and "unsubscribe" in response.url.path:
        assert "не найдена" in response.text or "Not Found" in response.text


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(text=st.text(max_size=400))
def test_a_garbage_chains_file_is_refused_with_reasons(tmp_path_factory, text):
    folder = tmp_path_factory.mktemp("cat")
    shutil.copytree(PACKAGED_CATALOG, folder / "c")
    (folder / "c" / "chains.yaml").write_text(text, encoding="utf-8")
    try:
        load_catalog(folder / "c")
    except CatalogError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
