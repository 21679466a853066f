"""A student never sees another student's hours, lots or sessions, whatever id they try."""

import pytest
from django.urls import reverse

from billing.tests.builders import credit, make_student, use

pytestmark = pytest.mark.django_db


@pytest.fixture
def other_students_lot():
    other = make_student("other@example.com")
    lot = credit(other, 1200, name="Intensive")
    use(other, 75, tutor="Prof. Secret Tutor", subject="Secret Subject")
    return lot


def test_another_students_lot_is_not_found(student_client, other_students_lot):
    response = student_client.get(reverse("student:lot_detail", args=[other_students_lot.id]))
    assert response.status_code == 404


def test_a_lot_id_that_does_not_exist_is_not_found(student_client, db):
    assert student_client.get(reverse("student:lot_detail", args=[987654])).status_code == 404


def test_own_lot_shows_its_history(student_client, student):
    lot = credit(student, 600, name="Standard")
    use(student, 90, subject="Algebra", tutor="Dr. Maria Keller")

    response = student_client.get(reverse("student:lot_detail", args=[lot.id]))

    text = response.content.decode()
    assert response.status_code == 200
    assert "8.5 h of 10 h" in text
    assert "Algebra with Dr. Maria Keller" in text
    assert "−1.5 h" in text and "+10 h" in text


@pytest.mark.parametrize("fragment", [None, "usage-table", "purchase-table", "balance", "lots"])
def test_the_dashboard_and_its_fragments_show_only_the_students_own_data(
    student_client, student, other_students_lot, fragment
):
    credit(student, 60)
    headers = {"HX-Request": "true", "HX-Target": fragment} if fragment else {}

    text = student_client.get(reverse("student:dashboard"), headers=headers).content.decode()

    assert "Secret Subject" not in text
    assert "Prof. Secret Tutor" not in text
    assert "Intensive" not in text
    assert "20 h" not in text
