from allauth.account.decorators import secure_admin_login
from django.conf import settings
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

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
