"""Fraud rules: flags raised from Stripe's early fraud warnings and from our own rules on payment
attempts.

The rules, each with its threshold in settings:
- attempts: more than FRAUD_MAX_ATTEMPTS_PER_HOUR payments started by one account within 60 minutes;
- cards: more than FRAUD_MAX_CARDS_PER_DAY different saved cards charged by one account within 24 hours;
- declines: FRAUD_DECLINE_STREAK declines in a row within 24 hours (a success ends a streak; failures
  that say nothing about the card, such as Stripe being unreachable, neither count nor end it);
- first_purchase: an attempt made before the account's first successful payment that costs more
  than FRAUD_FIRST_PURCHASE_FACTOR times the usual first purchase (see `usual_first_purchase`).
- card_setups: more than FRAUD_MAX_CARD_SETUPS_PER_DAY card setups (SetupIntents: each lets a card
  be tried with Stripe without any payment) by one account within 24 hours.

Every window of the payment rules ends at a payment attempt (its "anchor"), so the check after each
attempt and the periodic scan, which looks at every recent attempt, find the same things; the
card_setups window ends at the check (after each setup, and at each scan). A flag's dedupe key names
its rule, account and period (the anchor's UTC hour for attempts, its UTC day for cards and
declines, the account's one first purchase), so a rule that keeps matching raises one flag.
"""

import logging
from collections import defaultdict
from datetime import UTC, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from billing.models import Account, CardSetup, FraudFlag, Payment, Plan
from billing.versions import console_version_renew

logger = logging.getLogger(__name__)

Rule = FraudFlag.Rule

ATTEMPTS_WINDOW = timedelta(hours=1)
CARDS_WINDOW = timedelta(hours=24)
DECLINES_WINDOW = timedelta(hours=24)
CARD_SETUPS_WINDOW = timedelta(hours=24)
HISTORY = max(ATTEMPTS_WINDOW, CARDS_WINDOW, DECLINES_WINDOW)
# The scan also looks again at payments settled since its last look (a 3-D Secure check finished,
# a lost answer found) if they started no longer ago than this; older ones are abandoned checks.
LATE_SETTLEMENT = timedelta(hours=1)
# Failures that say nothing about the card holder: we or Stripe could not charge, the card was gone
# from Stripe, or a 3-D Secure check was cancelled because the student paid another way.
Failure = Payment.Failure
NOT_DECLINES = frozenset(
    {Failure.NOT_CHARGED, Failure.PROVIDER_UNAVAILABLE, Failure.REFUSED, Failure.CARD_NOT_FOUND, Failure.CANCELED}
)
# The usual first purchase is the median of real first purchases once there are enough of them;
# before that (a new portal), the median price of the packages on sale.
BASELINE_DAYS = 90
BASELINE_MIN_SAMPLE = 20


def fraud_flag_raise(*, payment, warning_object):
    """Create or update the flag for a Stripe early fraud warning. Idempotent by the warning's id."""
    flag, _ = FraudFlag.objects.update_or_create(
        stripe_warning_id=warning_object["id"],
        defaults={
            "account_id": payment.account_id,
            "payment": payment,
            "rule": Rule.RADAR,
            "dedupe_key": f"radar:{warning_object['id']}",
            "evidence": {
                "fraud_type": warning_object.get("fraud_type") or "unknown",
                "charge": warning_object.get("charge") or "",
                "payment_ids": [payment.pk],
            },
            "fraud_type": warning_object.get("fraud_type") or "unknown",
            "actionable": bool(warning_object.get("actionable", True)),
        },
    )
    return flag


def fraud_rules_check(*, account, payment=None):
    """Run the rules at one payment attempt (by default the account's latest) and raise what they find.
    Returns the flags raised; a rule that already flagged this account and period raises nothing."""
    anchor = payment or account.payments.order_by("-created_at", "-pk").first()
    if anchor is None:
        return []
    if anchor.account_id != account.pk:
        raise ValueError(f"Payment {anchor.pk} is not of account {account.pk}.")
    history = list(
        Payment.objects.filter(
            account_id=account.pk, created_at__gte=anchor.created_at - HISTORY, created_at__lte=anchor.created_at
        )
        .select_related("payment_method")
        .order_by("created_at", "pk")
    )
    anchor = next(attempt for attempt in history if attempt.pk == anchor.pk)  # as the database has it now
    found = _history_findings(history, [anchor])
    if not Payment.objects.filter(pk=anchor.pk).filter(Exists(_earlier_success())).exists():
        found += _first_purchase_findings([anchor], now=timezone.now())
    return _flags_raise(found)


def fraud_card_setups_check(*, account, now=None):
    """The card_setups rule at `now` for one account: checked after each card setup it starts, and
    by the scan. Returns the flag raised, if any (one per account and UTC day)."""
    now = now or timezone.now()
    setups = list(
        CardSetup.objects.filter(account_id=account.pk, created_at__gt=now - CARD_SETUPS_WINDOW, created_at__lte=now)
        .order_by("created_at", "pk")
        .values_list("stripe_setup_intent_id", flat=True)
    )
    if len(setups) <= settings.FRAUD_MAX_CARD_SETUPS_PER_DAY:
        return None
    at = now.astimezone(UTC)
    flag = FraudFlag(
        account_id=account.pk,
        rule=Rule.CARD_SETUPS,
        dedupe_key=f"{Rule.CARD_SETUPS.value}:{account.pk}:{at.year:04d}{at.month:02d}{at.day:02d}",
        evidence={"card_setups": len(setups), "limit": settings.FRAUD_MAX_CARD_SETUPS_PER_DAY, "setup_intents": setups},
        fraud_type="",
        actionable=True,
    )
    raised = _flags_raise([flag])
    return raised[0] if raised else None


def fraud_scan(now=None):
    """Run the rules at every payment attempt started (or settled) in the last
    FRAUD_SCAN_LOOKBACK_MINUTES: what a missed or failed check left out. A fixed number of queries
    whatever the number of accounts (plus one per account over the card-setups limit). Returns the
    flags raised."""
    now = now or timezone.now()
    since = now - timedelta(minutes=settings.FRAUD_SCAN_LOOKBACK_MINUTES)
    recent = Q(created_at__gte=since) | Q(settled_at__gte=since, created_at__gte=since - LATE_SETTLEMENT)
    # updated_at is never earlier than created_at or settled_at: its index narrows every query here.
    anchors = Payment.objects.filter(recent, updated_at__gte=since, created_at__lte=now)
    oldest = since - LATE_SETTLEMENT - HISTORY
    history = (
        Payment.objects.filter(
            account_id__in=anchors.values("account_id"),
            created_at__gte=oldest,
            created_at__lte=now,
            updated_at__gte=oldest,
        )
        .select_related("payment_method")
        .order_by("account_id", "created_at", "pk")
    )
    by_account = defaultdict(list)
    for attempt in history:
        by_account[attempt.account_id].append(attempt)
    found = []
    for attempts in by_account.values():
        found += _history_findings(attempts, [attempt for attempt in attempts if _is_recent(attempt, since)])
    first_attempts = anchors.exclude(Exists(_earlier_success())).order_by("created_at", "pk")
    found += _first_purchase_findings(list(first_attempts), now=now)
    return _flags_raise(found) + _card_setups_scan(since=since, now=now)


def _card_setups_scan(*, since, now):
    """The card_setups rule for every account over it now that started a setup since `since`: one
    query, then one check per account over the limit (a handful, if any)."""
    crowded = (
        CardSetup.objects.filter(created_at__gt=now - CARD_SETUPS_WINDOW, created_at__lte=now)
        .filter(account_id__in=CardSetup.objects.filter(created_at__gte=since).values("account_id"))
        .values("account_id")
        .annotate(setups=Count("id"))
        .filter(setups__gt=settings.FRAUD_MAX_CARD_SETUPS_PER_DAY)
        .values_list("account_id", flat=True)
    )
    raised = (fraud_card_setups_check(account=Account(pk=account_id), now=now) for account_id in crowded)
    return [flag for flag in raised if flag]


def _is_recent(attempt, since):
    """Python's twin of fraud_scan's `recent` filter."""
    if attempt.created_at >= since:
        return True
    settled_lately = attempt.settled_at is not None and attempt.settled_at >= since
    return settled_lately and attempt.created_at >= since - LATE_SETTLEMENT


def _earlier_success():
    """A succeeded payment of the outer payment's account started before it."""
    before = Q(created_at__lt=OuterRef("created_at")) | Q(created_at=OuterRef("created_at"), pk__lt=OuterRef("pk"))
    return Payment.objects.filter(before, account_id=OuterRef("account_id"), status=Payment.Status.SUCCEEDED)


def _history_findings(history, anchors):
    """The attempts, cards and declines rules at each anchor, over one account's `history` (ordered
    by created_at, pk, covering HISTORY before the earliest anchor)."""
    found = []
    for anchor in anchors:
        for rule in (_attempts_rule, _cards_rule, _declines_rule):
            flag = rule(history, anchor)
            if flag is not None:
                found.append(flag)
    return found


def _window(history, anchor, span):
    """The attempts of `history` in the `span` up to and including the anchor."""
    start, end = anchor.created_at - span, (anchor.created_at, anchor.pk)
    return [attempt for attempt in history if attempt.created_at > start and (attempt.created_at, attempt.pk) <= end]


def _attempts_rule(history, anchor):
    limit = settings.FRAUD_MAX_ATTEMPTS_PER_HOUR
    window = _window(history, anchor, ATTEMPTS_WINDOW)
    if len(window) <= limit:
        return None
    evidence = {
        "attempts": len(window),
        "limit": limit,
        "window": "1 hour",
        "first_at": window[0].created_at.isoformat(),
        "last_at": anchor.created_at.isoformat(),
        "payment_ids": [attempt.pk for attempt in window],
    }
    return _flag(Rule.ATTEMPTS, anchor, _utc_period(anchor, hourly=True), evidence)


def _cards_rule(history, anchor):
    limit = settings.FRAUD_MAX_CARDS_PER_DAY
    window = _window(history, anchor, CARDS_WINDOW)
    cards = list({attempt.payment_method_id: attempt.payment_method for attempt in window}.values())
    if len(cards) <= limit:
        return None
    evidence = {
        "cards": len(cards),
        "limit": limit,
        "window": "24 hours",
        "card_labels": [card.label for card in cards],
        "payment_method_ids": [card.pk for card in cards],
        "payment_ids": [attempt.pk for attempt in window],
    }
    return _flag(Rule.CARDS, anchor, _utc_period(anchor), evidence)


def _declines_rule(history, anchor):
    streak = settings.FRAUD_DECLINE_STREAK
    if not _is_decline(anchor):
        return None
    outcomes = [
        attempt
        for attempt in _window(history, anchor, DECLINES_WINDOW)
        if attempt.status == Payment.Status.SUCCEEDED or _is_decline(attempt)
    ]
    run = []
    for attempt in reversed(outcomes):
        if not _is_decline(attempt):
            break
        run.insert(0, attempt)
    if len(run) < streak:
        return None
    evidence = {
        "declines_in_a_row": len(run),
        "limit": streak,
        "window": "24 hours",
        "failure_codes": [attempt.failure_code for attempt in run],
        "payment_ids": [attempt.pk for attempt in run],
    }
    return _flag(Rule.DECLINES, anchor, _utc_period(anchor), evidence)


def _is_decline(attempt):
    return attempt.status == Payment.Status.FAILED and attempt.failure_code not in NOT_DECLINES


def _first_purchase_findings(first_attempts, *, now):
    """The first_purchase rule at attempts made before their account's first success."""
    factor = settings.FRAUD_FIRST_PURCHASE_FACTOR
    usual_by_currency = {}
    found = []
    for attempt in first_attempts:
        if attempt.currency not in usual_by_currency:
            usual_by_currency[attempt.currency] = usual_first_purchase(currency=attempt.currency, now=now)
        usual_cents, basis = usual_by_currency[attempt.currency]
        if usual_cents is None or attempt.amount_cents <= factor * usual_cents:
            continue
        evidence = {
            "amount_cents": attempt.amount_cents,
            "currency": attempt.currency,
            "usual_cents": int(usual_cents.quantize(Decimal(1), rounding=ROUND_HALF_UP)),
            "usual_basis": basis,
            "factor": format(factor.normalize(), "f"),
            "payment_ids": [attempt.pk],
        }
        found.append(_flag(Rule.FIRST_PURCHASE, attempt, "first", evidence))
    return found


def usual_first_purchase(*, currency, now=None):
    """What a new student usually spends first, in cents (a Decimal: a median may fall between two
    cents), and how it was found. The median of the first successful payment of each account that
    made one in the last BASELINE_DAYS, once there are BASELINE_MIN_SAMPLE of them: what students
    really buy first, which a catalogue with a large package does not distort. Before that, the
    median price of the packages on sale. (None, "") when neither exists."""
    now = now or timezone.now()
    firsts = Payment.objects.filter(
        status=Payment.Status.SUCCEEDED, currency=currency, created_at__gte=now - timedelta(days=BASELINE_DAYS)
    ).exclude(Exists(_earlier_success()))
    count = firsts.count()
    if count >= BASELINE_MIN_SAMPLE:
        amounts = firsts.order_by("amount_cents").values_list("amount_cents", flat=True)
        return _median(amounts, count), f"median first purchase of {count} students in the last {BASELINE_DAYS} days"
    prices = sorted(Plan.objects.filter(is_active=True, currency=currency).values_list("price_cents", flat=True))
    if not prices:
        return None, ""
    return _median(prices, len(prices)), f"median price of the {len(prices)} packages on sale"


def _median(ordered, count):
    """The median of `count` ordered values (a list, or a queryset: then only the middle is fetched)."""
    middle = list(ordered[(count - 1) // 2 : count // 2 + 1])
    return Decimal(sum(middle)) / len(middle)


def _utc_period(anchor, *, hourly=False):
    """The anchor's UTC day ("20250310") or hour ("2025031010"): a period of a dedupe key, the same
    whatever time zone the portal shows."""
    at = anchor.created_at.astimezone(UTC)
    day = f"{at.year:04d}{at.month:02d}{at.day:02d}"
    return f"{day}{at.hour:02d}" if hourly else day


def _flag(rule, anchor, period, evidence):
    return FraudFlag(
        account_id=anchor.account_id,
        payment_id=anchor.pk,
        rule=rule,
        dedupe_key=f"{rule.value}:{anchor.account_id}:{period}",
        evidence=evidence,
        fraud_type="",
        actionable=True,
    )


def _flags_raise(found):
    """Save the flags whose dedupe key is new, in one insert; return them."""
    new = {}
    for flag in found:
        new.setdefault(flag.dedupe_key, flag)  # the earliest anchor of a period speaks for it
    if not new:
        return []
    existing = set(FraudFlag.objects.filter(dedupe_key__in=list(new)).values_list("dedupe_key", flat=True))
    for key in existing:
        del new[key]
    if not new:
        return []
    # A check and the scan may race on one key: the unique key keeps one, and neither fails.
    FraudFlag.objects.bulk_create(new.values(), ignore_conflicts=True)
    console_version_renew()  # the overview counts open flags; a bulk insert sends no signal
    raised = list(FraudFlag.objects.filter(dedupe_key__in=list(new)).order_by("pk"))
    for flag in raised:
        logger.warning("Fraud flag %s raised: %s on account %s.", flag.pk, flag.rule, flag.account_id)
    return raised
