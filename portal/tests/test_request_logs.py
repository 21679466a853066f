"""Logs an operator can use: one structured line a request, the request's id on every line written
while serving it and on the Huey jobs it enqueued, and nothing secret on any line."""

import contextvars
import io
import json
import logging

import pytest
from django.http import HttpResponse
from django.urls import reverse
from huey import MemoryHuey

from billing import samples
from billing.tests.builders import make_student
from billing.tests.webhook_delivery import deliver
from portal.logs import ContextFilter, JsonLineFormatter, RequestLogMiddleware, huey_request_ids_connect, scrub


class CapturedLog:
    """Every line the root logger writes, as the json formatter of settings.LOGGING writes it."""

    def __init__(self):
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.addFilter(ContextFilter())
        self.handler.setFormatter(JsonLineFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))

    @property
    def text(self):
        return self.stream.getvalue()

    def lines(self, logger=None):
        found = [json.loads(line) for line in self.text.splitlines()]
        return [line for line in found if logger is None or line["name"] == logger]


@pytest.fixture
def captured_log():
    log = CapturedLog()
    root, huey = logging.getLogger(), logging.getLogger("huey")  # huey's lines do not propagate
    level = root.level
    root.addHandler(log.handler)
    huey.addHandler(log.handler)
    root.setLevel(logging.DEBUG)  # LOG_LEVEL=DEBUG: the most an operator could turn on
    yield log
    root.removeHandler(log.handler)
    huey.removeHandler(log.handler)
    root.setLevel(level)


@pytest.mark.django_db
class TestTheRequestLine:
    def test_each_request_writes_one_line_with_its_id_user_route_status_and_duration(self, client, captured_log):
        student = make_student()
        client.force_login(student.user)

        response = client.get(reverse("student:account"))

        [line] = captured_log.lines("portal.requests")
        assert line["request_id"] == response["X-Request-ID"]
        assert len(line["request_id"]) == 32
        assert line["user_id"] == student.user.pk
        assert line["route"] == "account/"
        assert line["method"] == "GET"
        assert line["status"] == 200
        assert line["duration_ms"] >= 0
        assert line["message"] == "GET account/ 200"

    def test_the_route_is_the_url_pattern_never_the_path_and_its_query(self, client, captured_log):
        student = make_student()
        client.force_login(student.user)

        client.get(reverse("console:payment", args=[12345]), {"payment_intent_client_secret": "pi_1_secret_2"})

        [line] = captured_log.lines("portal.requests")
        assert line["route"] == "console/payments/<int:payment_id>/"
        assert "pi_1_secret_2" not in captured_log.text  # Django's own "Not Found" line names the path alone

    def test_the_line_costs_no_query(self, client, captured_log, django_assert_num_queries):
        with django_assert_num_queries(0):
            client.get("/healthz")

        [line] = captured_log.lines("portal.requests")
        assert line["user_id"] is None and line["route"] == "healthz" and line["status"] == 200

    def test_an_unknown_address_is_logged_with_no_route(self, client, captured_log):
        client.get("/no/such/page/")

        [line] = captured_log.lines("portal.requests")
        assert line["status"] == 404 and line["route"] is None

    def test_the_proxys_request_id_is_kept_when_it_is_a_plain_token(self, client, captured_log):
        response = client.get("/healthz", headers={"X-Request-ID": "edge-4f1c2a9b"})

        assert response["X-Request-ID"] == "edge-4f1c2a9b"
        assert captured_log.lines("portal.requests")[0]["request_id"] == "edge-4f1c2a9b"

    @pytest.mark.parametrize("header", ["short", "x" * 65, "id with spaces", 'id"}\n{"forged": 1'])
    def test_any_other_incoming_id_is_replaced(self, client, captured_log, header):
        response = client.get("/healthz", headers={"X-Request-ID": header})

        assert response["X-Request-ID"] != header
        assert "forged" not in captured_log.text
        assert len(captured_log.lines()) == 1


@pytest.mark.django_db
def test_every_line_written_while_serving_carries_the_request_id(client, captured_log, settings):
    response = deliver(client, samples.event("charge.refunded", {"id": "ch_1"}), secret="whsec_wrong")

    assert response.status_code == 400
    request_id = response["X-Request-ID"]
    lines = captured_log.lines()
    assert len(lines) >= 2, "the bad signature's warning and the request line"
    assert {line["request_id"] for line in lines} == {request_id}
    assert "whsec_" not in captured_log.text


def test_a_job_enqueued_while_serving_carries_the_request_id_to_the_consumer(rf, captured_log):
    """Through a real (in-memory) Huey queue: the message is serialised, dequeued and run as the
    consumer would, on another context."""
    huey = MemoryHuey(immediate=False, utc=True)
    huey_request_ids_connect(huey)
    job_logger = logging.getLogger("portal.tests.job")

    @huey.task()
    def send_receipt(receipt_id):
        job_logger.info("sending receipt %s", receipt_id)

    def view(request):
        send_receipt(7)
        return HttpResponse("queued")

    response = RequestLogMiddleware(view)(rf.get("/"))
    request_id = response["X-Request-ID"]

    def consume():
        huey.execute(huey.dequeue())

    contextvars.Context().run(consume)  # a fresh context: nothing inherited from the request

    [job_line] = captured_log.lines("portal.tests.job")
    assert job_line["request_id"] == request_id
    assert job_line["task"] == "send_receipt"
    # Huey's own line names the task by its id, which starts with the request id.
    assert any(request_id in line["message"] for line in captured_log.lines("huey"))


def test_a_periodic_job_runs_with_no_request_id(captured_log):
    huey = MemoryHuey(immediate=True, utc=True)
    huey_request_ids_connect(huey)

    @huey.task()
    def scan():
        logging.getLogger("portal.tests.job").info("scanning")

    contextvars.Context().run(scan)  # as the consumer's scheduler runs it: outside any request

    [line] = captured_log.lines("portal.tests.job")
    assert line["request_id"] is None and line["task"] == "scan"


class TestScrubbing:
    @pytest.mark.parametrize(
        "secret",
        [
            "sk_live_51HqLyjWDarjtT1zdp7dc",
            "rk_test_abc_DEF123",
            "whsec_test_portal",
            "pi_3MtwBwLkdIwHu7ix28a3tqPa_secret_YrKJUKribcBjcG8HVhfZluoGH",
            "seti_1Mm8s8LkdIwHu7ix0OXBfTRG_secret_NXDICkPqPeiBTAFqWmkbff09lRmSVXe",
            "4242424242424242",
            "4000 0027 6000 3184",
            "5555-5555-5555-4444",
        ],
    )
    def test_secrets_and_card_numbers_never_reach_a_line(self, secret):
        assert secret not in scrub(f"Stripe said {secret}, twice: {secret}.")

    @pytest.mark.parametrize("harmless", ["pi_3MtwBwLkdIwHu7ix28a3tqPa", "1733570000123", "4242424242424241"])
    def test_ids_timestamps_and_numbers_that_are_not_cards_are_kept(self, harmless):
        assert scrub(f"about {harmless}") == f"about {harmless}"

    def test_a_traceback_is_scrubbed_too(self, captured_log):
        try:
            raise ValueError("client secret pi_1_secret_abc leaked into an error")
        except ValueError:
            logging.getLogger("portal.tests").exception("it failed")

        assert "Traceback" in captured_log.text
        assert "pi_1_secret_abc" not in captured_log.text
