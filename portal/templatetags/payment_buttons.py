"""The one-click pay button: it says exactly what will happen and carries a fresh one-time token.
For a blocked account it says briefly that buying is paused instead, and issues no token."""

from django import template

from billing.payments import payment_token_issue

register = template.Library()

VERBS = {"purchase": "Buy", "renewal": "Renew", "top_up": "Top up"}


@register.inclusion_tag("portal/_pay_button.html", takes_context=True)
def pay_button(context, plan, kind, renewed_lot=None, card=None):
    account = context["account"]
    if account.blocked_at is not None:
        return {"paused": True}  # said in full once, in the balance card; briefly where each button was
    card = card or context.get("default_card")
    token = payment_token_issue(account=account, plan=plan, kind=kind, renewed_lot=renewed_lot)
    return {
        "plan": plan,
        "card": card,
        "token": token if card else "",
        "verb": VERBS[kind],
        "csrf_token": context.get("csrf_token"),
    }
