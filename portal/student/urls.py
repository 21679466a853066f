from django.urls import path

from portal.student import views

app_name = "student"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("lots/<int:lot_id>/", views.lot_detail, name="lot_detail"),
    path("pay/", views.pay, name="pay"),
    path("payments/<int:payment_id>/refresh/", views.payment_refresh, name="payment_refresh"),
    path("receipts/", views.receipt_list, name="receipts"),
    path("receipts/<int:receipt_id>/pdf/", views.receipt_download, name="receipt_download"),
    path("alerts/", views.alert_inbox, name="alerts"),
    path("alerts/bell/", views.alert_bell, name="alert_bell"),
    path("alerts/banner/", views.alert_banner, name="alert_banner"),
    path("alerts/read/", views.alert_mark_read, name="alert_mark_all_read"),
    path("alerts/<int:notification_id>/read/", views.alert_mark_read, name="alert_mark_read"),
    path("alerts/preferences/", views.alert_preferences, name="alert_preferences"),
    path("cards/", views.card_list, name="cards"),
    path("cards/setup/", views.card_setup, name="card_setup"),
    path("cards/save/", views.card_save, name="card_save"),
    path("cards/<int:card_id>/default/", views.card_make_default, name="card_make_default"),
    path("cards/<int:card_id>/remove/", views.card_remove, name="card_remove"),
]
