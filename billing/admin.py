from django.contrib import admin

from billing.models import Account, LedgerEntry, Lot, Plan, Subscription, Usage


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "kind",
        "interval",
        "minutes",
        "price_cents",
        "currency",
        "validity_days",
        "rollover_periods",
        "is_active",
        "is_featured",
        "sort_order",
    ]
    list_editable = ["is_active", "is_featured", "sort_order"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Hours change only through billing.ledger, so the admin shows them and never edits them."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ["user", "balance_minutes", "low_balance_threshold_minutes", "created_at"]
    search_fields = ["user__email"]


@admin.register(Lot)
class LotAdmin(ReadOnlyAdmin):
    list_display = ["id", "account", "name", "minutes_purchased", "minutes_remaining", "expires_at", "expired_at"]
    list_select_related = ["account__user"]
    search_fields = ["account__user__email"]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ["id", "account", "lot", "kind", "minutes", "balance_after", "occurred_at", "reason"]
    list_filter = ["kind"]
    list_select_related = ["account__user", "lot"]
    search_fields = ["account__user__email"]


@admin.register(Usage)
class UsageAdmin(ReadOnlyAdmin):
    list_display = ["occurred_at", "account", "minutes", "tutor", "subject"]
    list_select_related = ["account__user"]
    search_fields = ["account__user__email", "tutor", "subject"]


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin):
    """Stripe owns a subscription's state (billing.subscriptions copies it); staff change it in the
    console, where it is audited."""

    list_display = [
        "id",
        "account",
        "plan",
        "status",
        "cancel_at_period_end",
        "current_period_end",
        "stripe_subscription_id",
        "created_at",
    ]
    list_filter = ["status", "cancel_at_period_end"]
    list_select_related = ["account__user", "plan"]
    search_fields = ["account__user__email", "stripe_subscription_id"]
