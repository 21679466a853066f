from django.urls import path

from portal.student import views

app_name = "student"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("lots/<int:lot_id>/", views.lot_detail, name="lot_detail"),
]
