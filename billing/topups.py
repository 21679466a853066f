"""Automatic top-up: when a student's available balance falls below their level, buy their package
with their card, at most N times and € M per calendar month.

A check runs on Huey after every change that lowers the available balance commits (a session, an
expiry, a refund, a dispute hold: billing.ledger names the job), after the settings change, and
from a periodic scan that catches what those missed. Each check works under the account's row
lock, so checks of one account queue up whatever process runs them.

An episode is one fall below the level. The check that finds the balance below opens the next
episode and, in the same transaction, makes its one Payment, whose idempotency key names the
episode: however many checks run, on however many processes, an episode makes one payment (and
Stripe sees one key). The episode closes when the balance is back at or above the level, or when
its payment failed without charging, so that a later check may try again as a new episode.

The payment is charged off-session by billing.payments, as a one-click renewal is: it credits a
lot and issues a receipt, the fraud rules see it, 3-D Secure waits for the student. What its
outcome means here (reset the declines, count a decline, pause) is recorded once per payment,
by the check after it settles.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from billing import background, ledger, payments
from billing.audit import audit_reason, audit_record
from billing.errors import BillingError
from billing.formatting import date_text, money_text
from billing.models import AutoTopUp, AutoTopUpEvent, Lot, Payment, PaymentMethod, Plan
from billing.selectors import with_available_minutes

logger = logging.getLogger(__name__)

Status = AutoTopUp.Status
Reason = AutoTopUp.PauseReason
Event = AutoTopUpEvent.Kind
# What a payment's state means for the top-up (Event), recorded once per payment and state.
OUTCOMES = {
    Payment.Status.REQUIRES_ACTION: Event.AWAITING_BANK,
    Payment.Status.NEEDS_REVIEW: Event.IN_REVIEW,
    Payment.Status.SUCCEEDED: Event.CHARGED,
    Payment.Status.RESOLVED: Event.SETTLED_BY_STAFF,
}
# An episode's payment that may still charge: the episode stays open until it settles.
UNSETTLED = (Payment.Status.PROCESSING, Payment.Status.REQUIRES_ACTION, Payment.Status.NEEDS_REVIEW)
# After a first decline the card is tried once more, no sooner than this: a bank that declined a
# moment ago declines again, and a second decline in a row pauses automatic top-up.
RETRY_AFTER_DECLINE = timedelta(hours=24)
DECLINES_TO_PAUSE = 2
# A payment that failed without reaching the bank (Stripe unreachable, a processing error, a payment
# cancelled because the student started another) is tried again an hour later, four times at most.
RETRY_AFTER_FAILURE = timedelta(hours=1)
FAILURES_TO_PAUSE = 4
# Failures that say nothing about the card (billing.payments' own list, and a payment cancelled
# before the bank answered); Stripe refusing the request, or the card gone, pause it at once.
NOT_A_DECLINE = payments.RETRYABLE_FAILURES | {Payment.Failure.CANCELED}
PAUSING_FAILURES = {Payment.Failure.REFUSED: Reason.REFUSED, Payment.Failure.CARD_NOT_FOUND: Reason.CARD_REMOVED}
# Paid or perhaps paid: what counts towards the month's cap.
COUNTED = (
    Payment.Status.SUCCEEDED,
    Payment.Status.PROCESSING,
    Payment.Status.REQUIRES_ACTION,
    Payment.Status.NEEDS_REVIEW,
    Payment.Status.RESOLVED,
)
MAX_TOP_UPS_A_MONTH = 31


class AutoTopUpRefused(BillingError):
    """Settings or a request automatic top-up refuses; nothing was saved or charged."""


@dataclass(frozen=True)
class MonthlyLimit:
    """The most automatic top-up can buy in one calendar month under a cap."""

    top_ups: int
    amount_cents: int
    currency: str


def monthly_limit(*, plan, count_cap, amount_cap_cents):
    """At most `count_cap` packages, and only as many as fit in `amount_cap_cents`."""
    top_ups = min(count_cap, amount_cap_cents // plan.price_cents)
    return MonthlyLimit(top_ups=top_ups, amount_cents=top_ups * plan.price_cents, currency=plan.currency)


def monthly_limit_text(limit):
    """The limit in words, as the student reads it after saving."""
    if not limit.top_ups:
        return _("It can charge nothing: the monthly amount is lower than the package's price.")
    return ngettext(
        "At most %(count)s top-up a month: the most it can charge in a calendar month is %(amount)s.",
        "At most %(count)s top-ups a month: the most it can charge in a calendar month is %(amount)s.",
        limit.top_ups,
    ) % {"count": limit.top_ups, "amount": money_text(limit.amount_cents, limit.currency)}


def auto_top_up_save(*, account, threshold_minutes, plan, card, monthly_count_cap, monthly_amount_cap_cents, actor):
    """Turn automatic top-up on with these settings (or change them). Saving is the student saying
    so: a top-up they paused, or that paused itself, runs again; one paused by staff stays paused.
    The check runs once this commits, so a balance already below the level buys at once.
    Raises AutoTopUpRefused (nothing saved) for settings that could never work."""
    _settings_check(
        account=account,
        threshold_minutes=threshold_minutes,
        plan=plan,
        card=card,
        monthly_count_cap=monthly_count_cap,
        monthly_amount_cap_cents=monthly_amount_cap_cents,
    )
    with transaction.atomic():
        ledger.account_lock(account_id=account.pk)
        setting = AutoTopUp.objects.select_for_update().filter(account=account).first() or AutoTopUp(account=account)
        setting.threshold_minutes = threshold_minutes
        setting.plan, setting.card = plan, card
        setting.monthly_count_cap, setting.monthly_amount_cap_cents = monthly_count_cap, monthly_amount_cap_cents
        if setting.status != Status.PAUSED:
            setting.status = Status.ACTIVE
        elif setting.pause_reason == Reason.CAP and not _fits_in_month(setting, timezone.now()):
            pass  # still over this month's (new) cap: it resumes when the month turns
        elif setting.pause_reason != Reason.STAFF:
            _resume(setting)
        setting.save()
        _record(
            setting,
            Event.SAVED,
            actor=actor,
            # Figures and names only: staff read it in either language.
            detail=f"< {threshold_minutes} min · {plan.name} · {card.label} · ≤ {monthly_count_cap} · "
            f"≤ {money_text(monthly_amount_cap_cents, plan.currency)}",
        )
    background.top_up_check.on_commit([account.pk], robust=True)
    return setting


def _settings_check(*, account, threshold_minutes, plan, card, monthly_count_cap, monthly_amount_cap_cents):
    if plan is None or not plan.is_active or plan.is_subscription:
        raise AutoTopUpRefused(_("This package is not for sale. Please choose another one."))
    if card is None or card.account_id != account.pk or card.removed_at is not None:
        raise AutoTopUpRefused(_("That card is not one of your saved cards."))
    if account.blocked_at is not None:
        raise AutoTopUpRefused(_("Buying is paused on your account, so automatic top-up cannot be turned on."))
    if threshold_minutes <= 0:
        raise AutoTopUpRefused(_("Enter a level above zero."))
    if not 0 < monthly_count_cap <= MAX_TOP_UPS_A_MONTH:
        raise AutoTopUpRefused(_("Enter between 1 and %(most)s top-ups a month.") % {"most": MAX_TOP_UPS_A_MONTH})
    if monthly_amount_cap_cents <= 0:
        raise AutoTopUpRefused(_("Enter a monthly amount above zero."))
    if monthly_amount_cap_cents < plan.price_cents:
        raise AutoTopUpRefused(
            _("%(plan)s costs %(price)s, more than the monthly amount: raise the amount or choose a smaller package.")
            % {"plan": plan.name, "price": money_text(plan.price_cents, plan.currency)}
        )


def auto_top_up_of(*, account):
    """The account's automatic top-up, or None when it was never set up."""
    return AutoTopUp.objects.select_related("plan", "card").filter(account=account).first()


def auto_top_up_turn_off(*, account, actor):
    """The student turns it off; their settings stay, to turn it on again."""
    with transaction.atomic():
        setting = _locked(account.pk)
        if setting.status == Status.PAUSED and setting.pause_reason == Reason.STAFF:
            raise AutoTopUpRefused(_staff_pause_text(setting))
        setting.status, setting.pause_reason, setting.pause_detail = Status.OFF, "", ""
        setting.paused_at = setting.resumes_at = None
        setting.episode_open = False
        setting.save()
        _record(setting, Event.TURNED_OFF, actor=actor)
    return setting


def auto_top_up_pause(*, account, actor):
    """The student pauses it until they resume it."""
    with transaction.atomic():
        setting = _locked(account.pk)
        if setting.status != Status.ACTIVE:
            raise AutoTopUpRefused(_("Automatic top-up is not on, so there is nothing to pause."))
        _pause(setting, Reason.STUDENT, actor=actor)
    return setting


def auto_top_up_resume(*, account, actor):
    """The student resumes a paused top-up (not one staff paused). The check runs once this commits."""
    with transaction.atomic():
        setting = _locked(account.pk)
        if setting.status != Status.PAUSED:
            raise AutoTopUpRefused(_("Automatic top-up is not paused."))
        if setting.pause_reason == Reason.STAFF:
            raise AutoTopUpRefused(_staff_pause_text(setting))
        if setting.pause_reason == Reason.CAP:
            raise AutoTopUpRefused(
                _("It resumes by itself on %(date)s. To buy more this month, raise the monthly limit and save.")
                % {"date": date_text(setting.resumes_on)}
            )
        _resume(setting, actor=actor)
    background.top_up_check.on_commit([account.pk], robust=True)
    return setting


def auto_top_up_pause_by_staff(*, account, actor, reason, ip_address=None):
    """Finance pauses a student's automatic top-up; only Finance lifts it. Audited."""
    reason = audit_reason(reason, _("Say why automatic top-up is paused; it is kept in the audit log."))
    with transaction.atomic():
        setting = _locked(account.pk)
        if setting.status == Status.OFF:
            raise AutoTopUpRefused(_("Automatic top-up is off for this student; nothing was paused."))
        if setting.pause_reason == Reason.STAFF:
            raise AutoTopUpRefused(_("Automatic top-up is already paused by staff."))
        before = {"status": setting.status, "pause_reason": setting.pause_reason}
        over_reason, over_detail, resumes_at = setting.pause_reason, setting.pause_detail, setting.resumes_at
        _pause(setting, Reason.STAFF, detail=reason, actor=actor, resumes_at=resumes_at)
        setting.paused_over_reason, setting.paused_over_detail = over_reason, over_detail
        setting.save(update_fields=["paused_over_reason", "paused_over_detail", "updated_at"])
        audit_record(
            actor=actor,
            action="auto_top_up.pause",
            target=setting.account,
            reason=reason,
            before=before,
            after={"status": setting.status, "pause_reason": setting.pause_reason},
            ip_address=ip_address,
        )
    return setting


def auto_top_up_resume_by_staff(*, account, actor, reason, ip_address=None):
    """Finance lifts its own pause: the top-up is as it was before (running, or paused by the student,
    the bank, the cap... which only they, or the month, lift). Audited; the check runs once this commits."""
    reason = audit_reason(reason, _("Say why automatic top-up resumes; it is kept in the audit log."))
    with transaction.atomic():
        setting = _locked(account.pk)
        if setting.pause_reason != Reason.STAFF:
            raise AutoTopUpRefused(_("Automatic top-up is not paused by staff; nothing was changed."))
        if setting.paused_over_reason:
            setting.pause_reason, setting.pause_detail = setting.paused_over_reason, setting.paused_over_detail
            setting.paused_over_reason = setting.paused_over_detail = ""
            setting.save()
            _record(setting, Event.RESUMED, actor=actor, detail=reason)
        else:
            _resume(setting, actor=actor, detail=reason)
        audit_record(
            actor=actor,
            action="auto_top_up.resume",
            target=setting.account,
            reason=reason,
            before={"status": Status.PAUSED, "pause_reason": Reason.STAFF},
            after={"status": setting.status},
            ip_address=ip_address,
        )
    background.top_up_check.on_commit([account.pk], robust=True)
    return setting


def auto_top_ups_check(*, account_ids, now=None):
    """Check the automatic top-up of these accounts (their balance fell, their settings changed).
    Returns the payments charged."""
    charged = []
    for account_id in sorted(set(account_ids)):
        try:
            payment = _check(account_id, now or timezone.now())
        except Exception:
            logger.exception("Could not check the automatic top-up of account %s; the scan looks again.", account_id)
            continue
        if payment is not None:
            charged.append(payment)
    return charged


def auto_top_ups_scan(*, now=None):
    """The safety net: every automatic top-up with something to do (a balance below its level with no
    episode open, an episode whose payment settled or whose balance recovered, a cap whose month has
    turned), found in one query and checked. Returns the payments charged."""
    now = now or timezone.now()
    candidates = with_available_minutes(
        AutoTopUp.objects.exclude(status=Status.OFF), now=now, account="account_id"
    ).filter(
        Q(status=Status.ACTIVE, episode_open=False, available__lt=F("threshold_minutes"))
        | Q(episode_open=True)
        | Q(status=Status.PAUSED, pause_reason=Reason.CAP, resumes_at__lte=now)
    )
    return auto_top_ups_check(account_ids=list(candidates.values_list("account_id", flat=True)), now=now)


def _check(account_id, now):
    setting = AutoTopUp.objects.exclude(status=Status.OFF).filter(account_id=account_id).first()
    # Read without the lock first: most checks find nothing to do, and the lock moves the account's
    # version (its cached pages).
    if setting is None or not _due(setting, now):
        return None
    with transaction.atomic():
        account = ledger.account_lock(account_id=account_id)
        setting = AutoTopUp.objects.select_for_update().select_related("plan", "card").get(pk=setting.pk)
        _outcome_record(setting, now)
        payment = _episode_step(setting, account, now)
    if payment is None:
        return None
    payment = payments.payment_charge(payment=payment)
    with transaction.atomic():
        ledger.account_lock(account_id=account_id)
        _outcome_record(AutoTopUp.objects.select_for_update().select_related("plan").get(pk=setting.pk), now)
    return payment


def _due(setting, now):
    if setting.episode_open and _outcome_pending(setting):
        return True
    if setting.status == Status.PAUSED:
        return setting.pause_reason == Reason.CAP and setting.resumes_at is not None and setting.resumes_at <= now
    available = Lot.objects.filter(account_id=setting.account_id).minutes_available(now)
    if available >= setting.threshold_minutes:
        return setting.episode_open
    if setting.episode_open:
        return False
    return not _waiting_to_retry(setting, now)


def _waiting_to_retry(setting, now):
    return setting.retry_after is not None and setting.retry_after > now


def _episode_step(setting, account, now):
    """Under the lock: open an episode and make its payment when one is due. Returns the payment to
    charge once this commits, or None."""
    if setting.status == Status.PAUSED and setting.pause_reason == Reason.CAP and setting.resumes_at <= now:
        _resume(setting)  # the month turned
    if setting.status != Status.ACTIVE:
        return None
    available = Lot.objects.filter(account=account).minutes_available(now)
    if available >= setting.threshold_minutes:
        if setting.episode_open:
            setting.episode_open = False
            setting.save(update_fields=["episode_open", "updated_at"])
        return None
    if setting.episode_open or _waiting_to_retry(setting, now):
        return None
    if refusal := _refusal(setting, account):
        _pause(setting, refusal)
        return None
    if payments.payment_in_flight(account=account):
        return None  # a purchase of the student's is being settled: the next check looks again
    if not _fits_in_month(setting, now):
        _pause(setting, Reason.CAP, resumes_at=_next_month(now))
        return None
    setting.episode += 1
    setting.episode_open = True
    setting.save(update_fields=["episode", "episode_open", "updated_at"])
    _record(setting, Event.TRIGGERED, detail=f"{available} min < {setting.threshold_minutes} min")
    return payments.payment_open_unattended(
        account=account,
        plan=setting.plan,
        card=setting.card,
        kind=Payment.Kind.AUTO_TOP_UP,
        idempotency_key=_episode_key(setting),
    )


def _refusal(setting, account):
    """Why this top-up may not charge now (a pause reason), or "": never a blocked account, a removed
    card or a package no longer on sale."""
    if account.blocked_at is not None:
        return Reason.BLOCKED
    card = PaymentMethod.objects.get(pk=setting.card_id)
    if card.removed_at is not None:
        return Reason.CARD_REMOVED
    plan = Plan.objects.get(pk=setting.plan_id)
    if not plan.is_active or plan.is_subscription:
        return Reason.PLAN_UNAVAILABLE
    return ""


def _episode_key(setting):
    return f"auto-top-up-{setting.pk}-{setting.episode}"


def _episode_payment(setting):
    return Payment.objects.filter(idempotency_key=_episode_key(setting), account_id=setting.account_id).first()


def _outcome_kind(payment):
    """The event that says what `payment`'s state means for the top-up, or None while it is processing."""
    if payment is None or payment.status == Payment.Status.PROCESSING:
        return None
    if payment.status != Payment.Status.FAILED:
        return OUTCOMES[payment.status]
    if payment.failure_code in NOT_A_DECLINE or payment.failure_code in PAUSING_FAILURES:
        return Event.FAILED
    return Event.DECLINED


def _outcome_pending(setting):
    payment = _episode_payment(setting)
    kind = _outcome_kind(payment)
    return kind is not None and not AutoTopUpEvent.objects.filter(payment=payment, kind=kind).exists()


def _outcome_record(setting, now):
    """Under the lock: what the open episode's payment, in its state now, means for the top-up; once
    per payment and state (a payment waiting for the bank may later be charged), whichever check
    sees it first. A pause of its own only pauses a top-up that runs: one already paused (by staff,
    say) keeps its reason."""
    if not setting.episode_open or not _outcome_pending(setting):
        return
    payment = _episode_payment(setting)
    kind = _outcome_kind(payment)
    running = setting.status == Status.ACTIVE
    if kind == Event.CHARGED:
        setting.declines_in_row = setting.failures_in_row = 0
        setting.retry_after = None
        setting.save()
        _record(setting, kind, payment=payment)
        if running and not _fits_in_month(setting, now):
            _pause(setting, Reason.CAP, resumes_at=_next_month(now))
        return
    if kind in (Event.AWAITING_BANK, Event.IN_REVIEW):
        _record(setting, kind, payment=payment)
        if running:
            reason = Reason.AUTHENTICATION if kind == Event.AWAITING_BANK else Reason.REVIEW
            _pause(setting, reason, payment=payment)
        return
    # Settled without charging (or by staff): the episode is over, so that a later check may try again.
    setting.episode_open = False
    if kind == Event.SETTLED_BY_STAFF:
        setting.save()
        _record(setting, kind, payment=payment)
        return
    setting.failures_in_row += 1
    if kind == Event.DECLINED:
        setting.declines_in_row += 1
        setting.retry_after = now + RETRY_AFTER_DECLINE
    else:
        setting.retry_after = now + RETRY_AFTER_FAILURE
    setting.save()
    _record(setting, kind, payment=payment, detail=payment.failure_message)
    if not running:
        return
    if payment.failure_code in PAUSING_FAILURES:
        _pause(setting, PAUSING_FAILURES[payment.failure_code], payment=payment)
    elif setting.declines_in_row >= DECLINES_TO_PAUSE:
        _pause(setting, Reason.DECLINED, detail=payment.failure_message, payment=payment)
    elif setting.failures_in_row >= FAILURES_TO_PAUSE:
        _pause(setting, Reason.FAILING, detail=payment.failure_message, payment=payment)


def _fits_in_month(setting, now):
    """Whether one more package fits in this calendar month's cap (top-ups and amount)."""
    start = _month_start(now)
    month = Payment.objects.filter(
        account_id=setting.account_id,
        kind=Payment.Kind.AUTO_TOP_UP,
        status__in=COUNTED,
        created_at__gte=start,
        created_at__lt=_next_month(now),
    ).aggregate(count=Count("pk"), cents=Coalesce(Sum("amount_cents"), 0))
    price = setting.plan.price_cents
    return month["count"] < setting.monthly_count_cap and month["cents"] + price <= setting.monthly_amount_cap_cents


def _month_start(now):
    # The school's calendar month (its time zone), the same for every student.
    local = now.astimezone(ZoneInfo(settings.TIME_ZONE))
    return datetime.combine(local.date().replace(day=1), time.min, tzinfo=local.tzinfo)


def _next_month(now):
    start = _month_start(now)
    return (start + timedelta(days=32)).replace(day=1)


def _pause(setting, reason, *, detail="", resumes_at=None, payment=None, actor=None):
    setting.status, setting.pause_reason, setting.pause_detail = Status.PAUSED, reason, detail[:300]
    setting.paused_at, setting.resumes_at = timezone.now(), resumes_at
    setting.save()
    _record(setting, Event.PAUSED, pause_reason=reason, detail=detail, payment=payment, actor=actor)


def _resume(setting, *, actor=None, detail=""):
    """Active again, with a clean slate: the failures are forgiven, and a new episode may start at once
    unless the last one's payment has yet to settle (its outcome is still to come, and it may charge)."""
    setting.status, setting.pause_reason, setting.pause_detail = Status.ACTIVE, "", ""
    setting.paused_at = setting.resumes_at = None
    setting.paused_over_reason = setting.paused_over_detail = ""
    payment = _episode_payment(setting)
    setting.episode_open = setting.episode_open and payment is not None and payment.status in UNSETTLED
    setting.declines_in_row = setting.failures_in_row = 0
    setting.retry_after = None
    setting.save()
    _record(setting, Event.RESUMED, actor=actor, detail=detail)


def _record(setting, kind, *, payment=None, pause_reason="", detail="", actor=None):
    return AutoTopUpEvent.objects.create(
        auto_top_up=setting,
        kind=kind,
        episode=setting.episode,
        payment=payment,
        pause_reason=pause_reason,
        detail=detail[:300],
        actor=actor,
    )


def _locked(account_id):
    ledger.account_lock(account_id=account_id)
    setting = AutoTopUp.objects.select_for_update().filter(account_id=account_id).first()
    if setting is None:
        raise AutoTopUpRefused(_("Automatic top-up is not set up."))
    return setting


def _staff_pause_text(setting):
    return _("Your school paused automatic top-up on %(date)s. Please contact them to resume it.") % {
        "date": date_text(setting.paused_at)
    }
