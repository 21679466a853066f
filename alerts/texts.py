"""What each kind of alert says, built from the facts stored with it (`Notification.params`) in the
language and time zone active when it is read: a student reads an alert a webhook raised in their
own language, and the same alert reads in Portuguese once they switch.

The facts are frozen when the alert is raised (amounts in cents, minutes, moments as ISO text, names
as staff typed them, a decline message as our English text), so an alert never changes what it
says, only the language it says it in. `written_text` is the text once more as of the site's default
language and time zone, stored with the alert for what reads the table itself (dispute evidence).
Keyed by the kinds' values: this module reads nothing of alerts.models (which reads it).
"""

from datetime import date, datetime

from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from billing.formatting import date_text, datetime_text, hours_text, money_text
from billing.models import FraudFlag, Payment
from billing.payments import PAYMENT_UNDER_REVIEW


def alert_text(kind, params):
    """(title, body) of an alert of `kind` with `params`, in the active language and time zone."""
    return TEXTS[kind](params)


def written_text(kind, params):
    """(title, body) in the site's default language and time zone, whoever raises the alert."""
    with translation.override(settings.LANGUAGE_CODE), timezone.override(settings.TIME_ZONE):
        return alert_text(kind, params)


def moment(value):
    """A datetime as a parameter (JSON holds text): read back by `_when`."""
    return value.isoformat() if value else None


def _when(text):
    return datetime.fromisoformat(text)


def _amount(params):
    return money_text(params["amount_cents"], params["currency"])


def _reason(params):
    """The decline message stored with the payment: ours are English msgids of the catalogue, so they
    read in the reader's language; one Stripe wrote itself stays as Stripe wrote it."""
    message = params.get("reason")
    return _(message) if message else ""


def _pay_again(p):
    return (
        _("Please pay again for %(plan)s") % {"plan": p["plan"]},
        _(
            "Your payment for %(plan)s (%(amount)s) on %(date)s did not go through: %(reason)s No hours were added. "
            "Open the link to pay again with one click."
        )
        % {"plan": p["plan"], "amount": _amount(p), "date": date_text(_when(p["paid_at"])), "reason": _reason(p)},
    )


def _payment_failed(p):
    if p.get("automatic"):
        return (
            _("Automatic top-up was declined"),
            _(
                "Automatic top-up could not buy %(plan)s (%(amount)s): %(reason)s No hours were added. It tries "
                "once more a day later; a second decline in a row pauses it."
            )
            % {"plan": p["plan"], "amount": _amount(p), "reason": _reason(p)},
        )
    return (
        _("A payment failed"),
        _("Your payment for %(plan)s (%(amount)s) failed: %(reason)s No hours were added.")
        % {"plan": p["plan"], "amount": _amount(p), "reason": _reason(p)},
    )


def _subscription_past_due(p):
    return (
        _("Your subscription payment failed"),
        _(
            "We could not charge %(plan)s (%(amount)s) for your subscription: %(reason)s Pay now with a saved card "
            "to keep your hours coming; your bank may try again on its own in a few days."
        )
        % {"plan": p["plan"], "amount": _amount(p), "reason": _reason(p)},
    )


def _payment_needs_action(p):
    if p.get("automatic"):
        return (
            _("Your bank asks you to confirm an automatic top-up"),
            _(
                "Automatic top-up tried to buy %(plan)s (%(amount)s) and your bank asks you to confirm it "
                "(3-D Secure). Open the link to complete it. Automatic top-up is paused meanwhile: resume it on "
                "your account page."
            )
            % {"plan": p["plan"], "amount": _amount(p)},
        )
    return (
        _("Your bank asks you to confirm a payment"),
        _(
            "Your payment for %(plan)s (%(amount)s) waits for your bank's check (3-D Secure). "
            "Open the link to finish it."
        )
        % {"plan": p["plan"], "amount": _amount(p)},
    )


def _payment_under_review(p):
    # Our price only, never Stripe's amount or ids: staff explain the rest.
    return (
        _("A payment is under review"),
        _("Your payment for %(plan)s (%(amount)s) is under review. %(explanation)s")
        % {"plan": p["plan"], "amount": _amount(p), "explanation": _(str(PAYMENT_UNDER_REVIEW))},
    )


def _auto_top_up_paused(p):
    reason = p["reason"]
    if reason == "cap" and p.get("resumes_on"):
        body = ngettext(
            "Automatic top-up bought as much as your monthly limit allows (%(count)s top-up, %(amount)s). It "
            "resumes by itself on %(date)s; to buy hours before then, use the dashboard.",
            "Automatic top-up bought as much as your monthly limit allows (%(count)s top-ups, %(amount)s). It "
            "resumes by itself on %(date)s; to buy hours before then, use the dashboard.",
            p["count_cap"],
        ) % {"count": p["count_cap"], "amount": _amount(p), "date": date_text(date.fromisoformat(p["resumes_on"]))}
    elif reason == "declined":
        body = _(
            "Two automatic top-ups in a row were declined (%(detail)s). It stays paused until you resume it on "
            "your account page; check the card or choose another one first."
        ) % {"detail": _reason({"reason": p.get("detail")})}
    elif reason == "failing":
        body = _(
            "Automatic top-up could not reach your bank %(count)s times in a row (%(detail)s). You were not "
            "charged. Resume it on your account page when you are ready to try again."
        ) % {"count": p.get("failures", 4), "detail": _reason({"reason": p.get("detail")})}
    elif reason == "refused":
        body = _(
            "The payment provider refused automatic top-up's payment, so it stopped. You were not charged. Check "
            "the card or choose another one, then resume it on your account page."
        )
    elif reason == "card_removed":
        body = _("The card automatic top-up charges was removed. Choose another card and save to resume it.")
    elif reason == "plan_unavailable":
        body = _("The package automatic top-up buys is no longer on sale. Choose another one and save to resume it.")
    elif reason == "blocked":
        body = _("Buying is paused on your account, so automatic top-up is paused too.")
    else:
        # Staff's reason is for the audit log, not for the student.
        body = _("Your school paused automatic top-up. Contact them to resume it.")
    return _("Automatic top-up is paused"), body


def _dispute_hold(p):
    hours = hours_text(p["minutes"])
    return (
        _("%(hours)s on hold for a dispute") % {"hours": hours},
        _(
            "Your bank opened a dispute about your payment for %(lot)s (%(amount)s). Until it is settled, %(hours)s "
            "of that package are on hold and cannot be used. If you did not mean to dispute this payment, please "
            "talk to your bank."
        )
        % {"lot": p["lot"], "amount": _amount(p), "hours": hours},
    )


def _refund_hours(p):
    values = {"amount": _amount(p), "hours": hours_text(p["minutes"]), "lot": p["lot"]}
    return (
        _("%(amount)s refunded, %(hours)s taken back from %(lot)s") % values,
        _(
            "%(amount)s of your payment for %(lot)s was refunded to your card, and %(hours)s of that package were "
            "taken back with it."
        )
        % values,
    )


def _balance_depleted(p):
    return (
        _("You have no tutoring hours left"),
        _("Your balance is 0 h. Top up to keep booking sessions."),
    )


def _low_balance(p):
    hours = hours_text(p["minutes"])
    return (
        _("Only %(hours)s left") % {"hours": hours},
        _("Your balance is %(hours)s, below your reminder level of %(level)s. Top up to keep your sessions going.")
        % {"hours": hours, "level": hours_text(p["threshold_minutes"])},
    )


def _lot_expiring(p, title):
    hours = hours_text(p["minutes"])
    return (
        title % {"hours": hours},
        _("%(hours)s of your %(lot)s package expire on %(when)s. Book a session to use them, or renew to add more.")
        % {"hours": hours, "lot": p["lot"], "when": datetime_text(_when(p["expires_at"]))},
    )


def _lot_expiring_1d(p):
    return _lot_expiring(p, _("%(hours)s expire tomorrow"))


def _lot_expiring_7d(p):
    return _lot_expiring(p, _("%(hours)s expire within a week"))


def _lot_expired(p):
    hours = hours_text(p["minutes"])
    return (
        _("%(hours)s expired unused") % {"hours": hours},
        _("Your %(lot)s package expired with %(hours)s unused.") % {"lot": p["lot"], "hours": hours},
    )


def _card_expiring(p):
    return (
        _("%(card)s expires at the end of next month") % {"card": p["card"]},
        _("Your %(card)s expires %(expiry)s. Add a new card so your renewals keep working.")
        % {"card": p["card"], "expiry": f"{p['exp_month']:02d}/{p['exp_year']}"},
    )


def _payment_succeeded(p):
    hours = hours_text(p["minutes"])
    if p.get("automatic"):
        return (
            _("Topped up %(hours)s automatically, %(amount)s") % {"hours": hours, "amount": _amount(p)},
            _(
                "Your available balance fell below your automatic top-up level, so %(plan)s was bought with your "
                "saved card and %(hours)s were added. The link opens its receipt."
            )
            % {"plan": p["plan"], "hours": hours},
        )
    return (
        _("%(hours)s added") % {"hours": hours},
        _("Your payment for %(plan)s (%(amount)s) went through and %(hours)s were added.")
        % {"plan": p["plan"], "amount": _amount(p), "hours": hours},
    )


def _subscription_renewing(p):
    values = {
        "plan": p["plan"],
        "when": datetime_text(_when(p["renews_at"])),
        "amount": _amount(p),
        "card": p["card"],
        "hours": hours_text(p["minutes"]),
    }
    if p["card"]:
        body = _("Your subscription renews on %(when)s: we will charge %(amount)s to %(card)s and add %(hours)s.")
    else:
        body = _(
            "Your subscription renews on %(when)s: we will charge %(amount)s to your default card and add %(hours)s."
        )
    return _("%(plan)s renews on %(when)s") % values, body % values


def _subscription_ended(p):
    return (
        _("Your %(plan)s subscription has ended") % {"plan": p["plan"]},
        _("No more hours will be added or charged. Hours you already have stay until they expire."),
    )


def _dispute_released(p):
    hours = hours_text(p["minutes"])
    return (
        _("%(hours)s released after a dispute") % {"hours": hours},
        _("The dispute about your payment for %(lot)s is settled: the %(hours)s on hold can be used again.")
        % {"lot": p["lot"], "hours": hours},
    )


def _staff_dispute_opened(p):
    values = {"amount": _amount(p), "student": p["student"], "reason": p["reason"] or _("no reason given")}
    if p["due_by"]:
        body = _("%(student)s disputed a payment of %(amount)s (%(reason)s). Evidence is due by %(due)s.")
        values["due"] = datetime_text(_when(p["due_by"]))
    else:
        body = _("%(student)s disputed a payment of %(amount)s (%(reason)s). Stripe gave no evidence due date.")
    return _("New dispute of %(amount)s by %(student)s") % values, body % values


def _staff_evidence_due(p):
    values = {"amount": _amount(p), "student": p["student"], "due": datetime_text(_when(p["due_by"]))}
    return (
        _("Dispute evidence due by %(due)s") % values,
        _(
            "The evidence for the dispute of %(amount)s by %(student)s is due by %(due)s and has not been "
            "submitted. Submit it, or accept the dispute."
        )
        % values,
    )


def _staff_fraud_flag(p):
    rule = FraudFlag.Rule(p["rule"]).label if p["rule"] in FraudFlag.Rule.values else p["rule"]
    return (
        _("New fraud flag on %(student)s") % {"student": p["student"]},
        _("%(rule)s for %(student)s. Clear the flag or confirm the fraud.") % {"rule": rule, "student": p["student"]},
    )


def _staff_webhook_failed(p):
    return (
        _("Stripe events are failing"),
        ngettext(
            "%(count)d Stripe event could not be applied: its handler kept failing, or what it is about never "
            "arrived. Read the error and retry it in the console.",
            "%(count)d Stripe events could not be applied: their handlers kept failing, or what they are about "
            "never arrived. Read the errors and retry them in the console.",
            p["count"],
        )
        % {"count": p["count"]},
    )


def _staff_payment_stuck(p):
    status = Payment.Status(p["status"]).label if p["status"] in Payment.Status.values else p["status"]
    values = {
        "payment": p["payment"],
        "amount": _amount(p),
        "student": p["student"],
        "started": datetime_text(_when(p["started_at"])),
        "status": status,
    }
    return (
        _("Payment %(payment)s is stuck in flight") % values,
        _(
            "Payment %(payment)s of %(amount)s by %(student)s started on %(started)s and still reads “%(status)s”: "
            "the reconciliation job has not settled it. Look it up in Stripe's Dashboard and resolve it."
        )
        % values,
    )


def _staff_job_stale(p):
    values = {"job": p["job"], "schedule": p["schedule"], "periods": p["periods"]}
    if p["last_started_at"]:
        values["since"] = datetime_text(_when(p["last_started_at"]))
        body = _(
            "The background job %(job)s (crontab %(schedule)s, UTC) has not started since %(since)s: it has "
            "missed %(periods)d of its runs. Check that the Huey consumer is running, and read the job's last "
            "outcome on the System page."
        )
    else:
        body = _(
            "The background job %(job)s (crontab %(schedule)s, UTC) has never started, though %(periods)d of "
            "its runs are due by now. Check that the Huey consumer is running, and read the System page."
        )
    return _("Background job %(job)s is late") % values, body % values


TEXTS = {
    "pay_again": _pay_again,
    "payment_failed": _payment_failed,
    "subscription_past_due": _subscription_past_due,
    "payment_needs_action": _payment_needs_action,
    "payment_under_review": _payment_under_review,
    "auto_top_up_paused": _auto_top_up_paused,
    "dispute_hold": _dispute_hold,
    "refund_hours": _refund_hours,
    "balance_depleted": _balance_depleted,
    "lot_expiring_1d": _lot_expiring_1d,
    "low_balance": _low_balance,
    "lot_expiring_7d": _lot_expiring_7d,
    "lot_expired": _lot_expired,
    "card_expiring": _card_expiring,
    "payment_succeeded": _payment_succeeded,
    "subscription_renewing": _subscription_renewing,
    "subscription_ended": _subscription_ended,
    "dispute_released": _dispute_released,
    "staff_dispute_opened": _staff_dispute_opened,
    "staff_evidence_due": _staff_evidence_due,
    "staff_fraud_flag": _staff_fraud_flag,
    "staff_webhook_failed": _staff_webhook_failed,
    "staff_payment_stuck": _staff_payment_stuck,
    "staff_job_stale": _staff_job_stale,
}
