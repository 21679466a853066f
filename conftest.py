"""Fixtures shared by every test package."""

import pytest

from billing.tests.builders import PASSWORD, make_staff, make_student


@pytest.fixture
def student(db):
    return make_student("ana@example.com", first_name="Ana")


@pytest.fixture
def student_client(client, student):
    client.force_login(student.user)
    return client


@pytest.fixture
def staff_user(db):
    return make_staff()


@pytest.fixture
def password():
    return PASSWORD
