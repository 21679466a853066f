"""Machine endpoints of the billing domain (no pages)."""

from django.urls import path

from billing import webhooks

app_name = "billing"
urlpatterns = [
    path("webhooks/stripe/", webhooks.stripe_webhook, name="stripe_webhook"),
]
