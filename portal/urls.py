from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path

# Django's admin signs in through allauth (email verification, rate limits), never on its own form.
admin.site.login = secure_admin_login(admin.site.login)

urlpatterns = [
    path("", include("portal.student.urls")),
    path("console/", include("portal.console.urls")),
    path("accounts/", include("allauth.urls")),
    path("billing/", include("billing.urls")),
    path("admin/", admin.site.urls),
]
# MEDIA_ROOT holds private documents (receipts): it is never served as files, in development or
# production. Downloads go through views that check who is asking.
