from django.urls import path

from portal.student import account_views, privacy_views, views
from portal.student import statement_views as statements

app_name = "student"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("live/", views.live, name="live"),
    path("lots/<int:lot_id>/", views.lot_detail, name="lot_detail"),
    path("pay/", views.pay, name="pay"),
    path("payments/<int:payment_id>/refresh/", views.payment_refresh, name="payment_refresh"),
    path("subscribe/", views.subscribe, name="subscribe"),
    path("subscription/", views.subscription_page, name="subscription"),
    path("subscription/<int:subscription_id>/cancel/", views.subscription_cancel, name="subscription_cancel"),
    path("subscription/<int:subscription_id>/resume/", views.subscription_resume, name="subscription_resume"),
    path("subscription/<int:subscription_id>/plan/", views.subscription_plan_change, name="subscription_plan_change"),
    path("subscription/<int:subscription_id>/card/", views.subscription_card_change, name="subscription_card_change"),
    path("subscription/<int:subscription_id>/pay/", views.subscription_pay_now, name="subscription_pay_now"),
    path("receipts/", views.receipt_list, name="receipts"),
    path("receipts/<int:receipt_id>/pdf/", views.receipt_download, name="receipt_download"),
    path("alerts/", views.alert_inbox, name="alerts"),
    path("alerts/bell/", views.alert_bell, name="alert_bell"),
    path("alerts/banner/", views.alert_banner, name="alert_banner"),
    path("alerts/read/", views.alert_mark_read, name="alert_mark_all_read"),
    path("alerts/<int:notification_id>/read/", views.alert_mark_read, name="alert_mark_read"),
    path("alerts/preferences/", account_views.alert_preferences, name="alert_preferences"),
    path("account/", account_views.account_page, name="account"),
    path("account/details/", account_views.account_details, name="account_details"),
    path("account/reminder/", account_views.account_reminder, name="account_reminder"),
    path("account/locale/", account_views.account_locale, name="account_locale"),
    path("account/my-data.zip", privacy_views.data_export, name="data_export"),
    path("statement.pdf", statements.statement_pdf, name="statement_pdf"),
    path("statement.csv", statements.statement_csv, name="statement_csv"),
    path("account/statement-emails/", statements.statement_emails, name="statement_emails"),
    path("account/auto-top-up/", account_views.account_auto_top_up, name="account_auto_top_up"),
    path("account/auto-top-up/state/", account_views.account_auto_top_up_state, name="account_auto_top_up_state"),
    path("cards/", views.card_list, name="cards"),
    path("cards/setup/", views.card_setup, name="card_setup"),
    path("cards/save/", views.card_save, name="card_save"),
    path("cards/<int:card_id>/default/", views.card_make_default, name="card_make_default"),
    path("cards/<int:card_id>/remove/", views.card_remove, name="card_remove"),
]
