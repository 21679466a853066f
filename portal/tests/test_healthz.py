"""/healthz answers load balancers without touching the database."""

from django.urls import reverse


def test_it_answers_ok_without_a_query(db, client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get(reverse("healthz"))
    assert response.status_code == 200 and response.content == b"ok"
