"""/readyz: 200 with every check's timing while the database, the cache, the job queue and the media
storage answer; 503 naming the one that does not, each made to fail for real; no secrets, no
session, never cached."""

import shutil
import socket

import pytest
from django.db import connection
from django.urls import reverse
from huey import RedisHuey, SqliteHuey
from huey.contrib import djhuey

pytestmark = pytest.mark.django_db

CHECKS = {"database", "cache", "queue", "storage"}


def closed_port():
    """A local port nothing listens on: bound, then let go."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ready(client):
    response = client.get(reverse("readyz"))
    return response, response.json()


def failed(body):
    return {name for name, check in body["checks"].items() if not check["ok"]}


@pytest.fixture
def sqlite_queue(tmp_path, monkeypatch):
    """The project's Huey swapped for a real SqliteHuey, as a deployment without Redis runs it."""
    (tmp_path / "queue").mkdir()
    queue = SqliteHuey("readyz-test", filename=str(tmp_path / "queue" / "huey.sqlite3"))
    monkeypatch.setattr(djhuey, "HUEY", queue)
    return queue


def test_all_checks_pass_with_their_timings(client):
    response, body = ready(client)

    assert response.status_code == 200
    assert body["status"] == "ok" and set(body["checks"]) == CHECKS
    assert all(check["ok"] and check["ms"] >= 0 for check in body["checks"].values())
    assert body["checks"]["queue"]["mode"] == "immediate"  # the tests run jobs inline


def test_it_needs_no_session_and_is_never_cached(client):
    response, _ = ready(client)

    assert "Cache-Control" in response and "no-store" in response["Cache-Control"]
    assert "sessionid" not in response.cookies


def test_it_answers_get_and_head_only(client):
    assert client.head(reverse("readyz")).status_code == 200
    assert client.post(reverse("readyz")).status_code == 405


def test_a_cache_that_does_not_answer_makes_it_unavailable(client, settings):
    url = f"redis://127.0.0.1:{closed_port()}/0"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}}

    response, body = ready(client)

    assert response.status_code == 503 and body["status"] == "unavailable"
    assert failed(body) == {"cache"}
    assert body["checks"]["cache"]["error"] == "ConnectionError"
    assert "127.0.0.1" not in response.content.decode()  # no address, no connection string


def test_media_storage_that_cannot_be_written_makes_it_unavailable(client, settings, tmp_path):
    not_a_folder = tmp_path / "media"
    not_a_folder.write_text("a file where the folder should be")
    settings.MEDIA_ROOT = not_a_folder

    response, body = ready(client)

    assert response.status_code == 503 and failed(body) == {"storage"}
    assert str(tmp_path) not in response.content.decode()


def test_the_storage_probe_leaves_no_file_behind(client, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"

    ready(client)

    assert list((tmp_path / "media").rglob("*.txt")) == []


def test_a_sqlite_queue_that_answers_reports_its_depth(client, sqlite_queue):
    sqlite_queue.storage.enqueue(b"a job", priority=None)

    response, body = ready(client)

    assert response.status_code == 200
    assert body["checks"]["queue"] | {"ms": 0} == {"ok": True, "ms": 0, "backend": "sqlite", "pending": 1}


def test_a_sqlite_queue_whose_file_is_gone_makes_it_unavailable(client, sqlite_queue, tmp_path):
    shutil.rmtree(tmp_path / "queue")  # e.g. a volume that is not mounted

    response, body = ready(client)

    assert response.status_code == 503 and failed(body) == {"queue"}
    assert body["checks"]["queue"]["error"] == "OperationalError"
    assert not (tmp_path / "queue").exists()  # the check created nothing in its place


def test_a_redis_queue_that_does_not_answer_makes_it_unavailable(client, monkeypatch):
    monkeypatch.setattr(djhuey, "HUEY", RedisHuey("readyz-test", url=f"redis://127.0.0.1:{closed_port()}/0"))

    response, body = ready(client)

    assert response.status_code == 503 and failed(body) == {"queue"}
    assert body["checks"]["queue"]["error"] == "ConnectionError"


def test_a_redis_queue_that_answers_passes(client, monkeypatch, settings):
    if not settings.REDIS_URL:
        pytest.skip("Redis is the scale-out configuration (CI's second leg sets REDIS_URL).")
    monkeypatch.setattr(djhuey, "HUEY", RedisHuey("readyz-test", url=settings.REDIS_URL))

    response, body = ready(client)

    assert response.status_code == 200 and body["checks"]["queue"]["pending"] == 0


@pytest.mark.django_db(transaction=True)
def test_a_database_that_does_not_answer_makes_it_unavailable(client, tmp_path):
    configured = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = str(tmp_path / "gone" / "portal.sqlite3")
    else:
        connection.settings_dict |= {"HOST": "127.0.0.1", "PORT": closed_port()}
    try:
        response, body = ready(client)
    finally:
        connection.close()
        connection.settings_dict.update(configured)

    assert response.status_code == 503 and failed(body) == {"database"}
    assert body["checks"]["database"]["error"] == "OperationalError"
