"""The console exists only for staff: anonymous visitors sign in, students get 404."""

from django.urls import reverse

URL = reverse("console:index")


def test_it_asks_anonymous_visitors_to_sign_in(client, db):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_it_does_not_exist_for_students(student_client):
    assert student_client.get(URL).status_code == 404


def test_it_opens_for_staff(client, staff_user):
    client.force_login(staff_user)
    response = client.get(URL)
    assert response.status_code == 200
    assert "Staff console" in response.content.decode()


def test_the_admin_signs_in_through_allauth(client, db):
    response = client.get(reverse("admin:index"), follow=True)
    final_url, _ = response.redirect_chain[-1]
    assert final_url.startswith(reverse("account_login"))
    assert "auth-card" in response.content.decode()


def test_the_admin_is_closed_to_students(student_client):
    assert student_client.get(reverse("admin:index")).status_code in (302, 403)
    assert student_client.get(reverse("admin:login")).status_code == 403
