"""The one-click subscribe button: it says what will happen (hours and price per period, the card
charged). Whether it may be offered, and its one-time token, come from
billing.subscriptions.subscribe_button; the tag only lays it out."""

from django import template

from billing.subscriptions import subscribe_button as button_for

register = template.Library()


@register.inclusion_tag("portal/_subscription_button.html", takes_context=True)
def subscribe_button(context, plan, card=None):
    button = button_for(account=context["account"], plan=plan, card=card or context.get("default_card"))
    return {
        "paused": button.paused,
        "current": button.current,
        "plan": button.plan,
        "card": button.card,
        "token": button.token,
        # A card other than the default one (offered after a decline) becomes the default: say so.
        "becomes_default": button.card is not None and not button.card.is_default,
        "add_card_href": context.get("add_card_href") or "#add-card",
        "csrf_token": context.get("csrf_token"),
    }
