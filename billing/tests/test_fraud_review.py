"""What staff do with fraud flags (clear, confirm, note) and with accounts (block, unblock): each
audited, each refused when it no longer applies."""

import pytest

from billing.errors import FraudFlagRefused, ReasonRequired
from billing.fraud import blocks, review, rules
from billing.models import Account, AuditEntry
from billing.tests.builders import make_student
from billing.tests.fraud_attempts import NOW, attempt

pytestmark = pytest.mark.django_db


@pytest.fixture
def flag(frozen, plan):
    account = make_student()
    for n in range(6):
        attempt(account, plan, minutes_ago=30 - n)
    [flag] = rules.fraud_rules_check(account=account)
    return flag


def audit_actions():
    return list(AuditEntry.objects.order_by("pk").values_list("action", "reason", "target_type", "target_id"))


def test_clearing_a_flag_closes_it_and_audits(flag, staff_user):
    cleared = review.fraud_flag_clear(
        flag=flag, actor=staff_user, reason="Known student, new cards", ip_address="10.0.0.1"
    )

    flag.refresh_from_db()
    assert (flag.status, flag.resolved_by, flag.resolved_at) == ("cleared", staff_user, NOW)
    assert cleared.status == "cleared"
    [entry] = AuditEntry.objects.all()
    assert (entry.action, entry.reason, entry.actor, entry.ip_address) == (
        "fraud_flag.clear",
        "Known student, new cards",
        staff_user,
        "10.0.0.1",
    )
    assert (entry.account_id, entry.payment_id) == (flag.account_id, flag.payment_id)
    assert (entry.before, entry.after) == ({"status": "open"}, {"status": "cleared"})
    flag.account.refresh_from_db()
    assert flag.account.blocked_at is None


def test_confirming_a_flag_blocks_the_account_and_audits_both(flag, staff_user):
    review.fraud_flag_confirm(flag=flag, actor=staff_user, reason="Card testing: six cards declined")

    flag.refresh_from_db()
    flag.account.refresh_from_db()
    assert (flag.status, flag.resolved_by) == ("confirmed", staff_user)
    assert (flag.account.blocked_at, flag.account.blocked_reason) == (NOW, "Card testing: six cards declined")
    assert audit_actions() == [
        ("fraud_flag.confirm", "Card testing: six cards declined", "fraudflag", str(flag.pk)),
        ("account.block", "Card testing: six cards declined", "account", str(flag.account_id)),
    ]


def test_confirming_without_blocking_leaves_the_account_able_to_buy(flag, staff_user):
    review.fraud_flag_confirm(flag=flag, actor=staff_user, reason="Fraud, but the card is now blocked", block=False)

    flag.account.refresh_from_db()
    assert flag.account.blocked_at is None
    assert [action for action, *_ in audit_actions()] == ["fraud_flag.confirm"]


def test_confirming_needs_a_reason(flag, staff_user):
    with pytest.raises(ReasonRequired):
        review.fraud_flag_confirm(flag=flag, actor=staff_user, reason="  ")

    flag.refresh_from_db()
    assert flag.status == "open"
    assert not AuditEntry.objects.exists()


def test_a_note_is_an_audit_entry_and_leaves_the_flag_open(flag, staff_user):
    entry = review.fraud_flag_note(flag=flag, actor=staff_user, note="Called the parent, no answer yet.")

    flag.refresh_from_db()
    assert flag.status == "open"
    assert (entry.action, entry.reason, entry.target_id) == (
        "fraud_flag.note",
        "Called the parent, no answer yet.",
        str(flag.pk),
    )
    assert entry.account_id == flag.account_id


def test_an_empty_note_is_refused(flag, staff_user):
    with pytest.raises(ReasonRequired):
        review.fraud_flag_note(flag=flag, actor=staff_user, note="")

    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize(
    "action",
    [
        lambda flag, staff_user: review.fraud_flag_clear(flag=flag, actor=staff_user, reason="again"),
        lambda flag, staff_user: review.fraud_flag_confirm(flag=flag, actor=staff_user, reason="again"),
    ],
    ids=["clear", "confirm"],
)
def test_clear_and_confirm_on_a_closed_flag_are_refused(flag, staff_user, action):
    review.fraud_flag_clear(flag=flag, actor=staff_user, reason="False alarm")

    with pytest.raises(FraudFlagRefused, match="This flag was already cleared; nothing was changed."):
        action(flag, staff_user)  # `flag` as the stale page still had it: open

    flag.refresh_from_db()
    flag.account.refresh_from_db()
    assert flag.status == "cleared"
    assert flag.account.blocked_at is None
    assert [action for action, *_ in audit_actions()] == ["fraud_flag.clear"]


def test_blocking_and_unblocking_an_account_are_audited(frozen, staff_user):
    account = make_student()

    blocks.account_block(account=account, actor=staff_user, reason="Chargebacks on three cards", ip_address="10.0.0.2")
    account.refresh_from_db()
    assert (account.blocked_at, account.blocked_reason) == (NOW, "Chargebacks on three cards")

    blocks.account_unblock(account=account, actor=staff_user, reason="Bank confirmed the cards")
    account.refresh_from_db()
    assert (account.blocked_at, account.blocked_reason) == (None, "")

    block, unblock = AuditEntry.objects.order_by("pk")
    assert (block.action, block.reason, block.account_id, block.ip_address) == (
        "account.block",
        "Chargebacks on three cards",
        account.pk,
        "10.0.0.2",
    )
    assert block.after == {"blocked_at": NOW.isoformat(), "blocked_reason": "Chargebacks on three cards"}
    assert (unblock.action, unblock.reason) == ("account.unblock", "Bank confirmed the cards")
    assert unblock.after == {"blocked_at": None, "blocked_reason": ""}


@pytest.mark.parametrize("service", [blocks.account_block, blocks.account_unblock])
def test_blocking_and_unblocking_need_a_reason(staff_user, service):
    account = make_student()
    if service is blocks.account_unblock:
        blocks.account_block(account=account, actor=staff_user, reason="Confirmed fraud")
    blocked_before = Account.objects.get(pk=account.pk).blocked_at
    entries_before = AuditEntry.objects.count()

    with pytest.raises(ReasonRequired, match="Please give a reason."):
        service(account=account, actor=staff_user, reason=" ")

    assert Account.objects.get(pk=account.pk).blocked_at == blocked_before
    assert AuditEntry.objects.count() == entries_before


def test_confirming_a_flag_of_a_blocked_account_keeps_the_first_block(flag, staff_user):
    blocks.account_block(account=flag.account, actor=staff_user, reason="First reason")

    review.fraud_flag_confirm(flag=flag, actor=staff_user, reason="Second flag, same student")

    flag.account.refresh_from_db()
    assert flag.account.blocked_reason == "First reason"
    assert [action for action, *_ in audit_actions()] == ["account.block", "fraud_flag.confirm"]


def test_a_closed_flag_still_takes_notes(flag, staff_user):
    review.fraud_flag_clear(flag=flag, actor=staff_user, reason="False alarm")
    review.fraud_flag_note(flag=flag, actor=staff_user, note="The parent called back to thank us.")
    flag.refresh_from_db()
    assert flag.status == "cleared"
    assert [action for action, *_ in audit_actions()] == ["fraud_flag.clear", "fraud_flag.note"]
