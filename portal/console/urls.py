from django.urls import path

from portal.console.views import disputes, fraud, overview, payments, students, subscriptions, webhooks

app_name = "console"
urlpatterns = [
    path("", overview.overview, name="index"),
    path("payments/", payments.payment_list, name="payments"),
    path("payments/export.csv", payments.payment_export, name="payments_export"),
    path("payments/<int:payment_id>/", payments.payment_detail, name="payment"),
    path("payments/<int:payment_id>/refund/", payments.refund_create, name="refund_create"),
    path("payments/<int:payment_id>/resolve/", payments.payment_resolve, name="payment_resolve"),
    path("refunds/", payments.refund_list, name="refunds"),
    path("refunds/<int:refund_id>/send/", payments.refund_send, name="refund_send"),
    path("receipts/<int:receipt_id>/pdf/", payments.receipt_download, name="receipt_download"),
    path("receipts/<int:receipt_id>/resend/", payments.receipt_resend, name="receipt_resend"),
    path("disputes/", disputes.dispute_list, name="disputes"),
    path("disputes/<int:dispute_id>/", disputes.dispute_detail, name="dispute"),
    path("disputes/<int:dispute_id>/accept/", disputes.dispute_accept, name="dispute_accept"),
    path("subscriptions/", subscriptions.subscription_list, name="subscriptions"),
    path("subscriptions/<int:subscription_id>/", subscriptions.subscription_detail, name="subscription"),
    path(
        "subscriptions/<int:subscription_id>/cancel-now/",
        subscriptions.subscription_cancel_now,
        name="subscription_cancel_now",
    ),
    path(
        "subscriptions/<int:subscription_id>/cancel-at-period-end/",
        subscriptions.subscription_cancel_at_period_end,
        name="subscription_cancel_at_period_end",
    ),
    path("subscriptions/<int:subscription_id>/resume/", subscriptions.subscription_resume, name="subscription_resume"),
    path("fraud/", fraud.flag_list, name="flags"),
    path("fraud/<int:flag_id>/clear/", fraud.flag_clear, name="flag_clear"),
    path("fraud/<int:flag_id>/confirm/", fraud.flag_confirm, name="flag_confirm"),
    path("fraud/<int:flag_id>/note/", fraud.flag_note, name="flag_note"),
    path("webhooks/", webhooks.webhook_list, name="webhooks"),
    path("webhooks/retry-failed/", webhooks.webhook_retry_failed, name="webhooks_retry_failed"),
    path("webhooks/<int:event_id>/", webhooks.webhook_detail, name="webhook"),
    path("webhooks/<int:event_id>/retry/", webhooks.webhook_retry, name="webhook_retry"),
    path("students/", students.student_list, name="students"),
    path("students/<int:account_id>/", students.student_detail, name="student"),
    path("students/<int:account_id>/session/", students.session_create, name="session_create"),
    path("students/<int:account_id>/adjust/", students.hours_adjust, name="hours_adjust"),
    path("students/<int:account_id>/block/", students.student_block, {"block": True}, name="student_block"),
    path("students/<int:account_id>/unblock/", students.student_block, {"block": False}, name="student_unblock"),
    path("audit/", overview.audit_log, name="audit"),
]
