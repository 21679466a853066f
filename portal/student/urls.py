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
    path("cards/", views.card_list, name="cards"),
    path("cards/setup/", views.card_setup, name="card_setup"),
    path("cards/save/", views.card_save, name="card_save"),
    path("cards/<int:card_id>/default/", views.card_make_default, name="card_make_default"),
    path("cards/<int:card_id>/remove/", views.card_remove, name="card_remove"),
]
