"""The one-click pay button: it says exactly what will happen. Whether it may be offered, and its
one-time token, come from billing.payments.payment_button; the tag only lays it out (its words, one
whole sentence per kind of payment so that each translates as a sentence, are in the template)."""

from django import template

from billing.payments import payment_button

register = template.Library()


@register.inclusion_tag("portal/_pay_button.html", takes_context=True)
def pay_button(context, plan, kind, renewed_lot=None, card=None):
    button = payment_button(
        account=context["account"],
        plan=plan,
        kind=kind,
        renewed_lot=renewed_lot,
        card=card or context.get("default_card"),
    )
    return {
        "paused": button.paused,  # said in full once, in the balance card; briefly where each button was
        "plan": button.plan,
        "card": button.card,
        "token": button.token,
        "kind": kind,
        "renewed_lot": renewed_lot,
        "csrf_token": context.get("csrf_token"),
    }
