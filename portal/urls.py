from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path
from django.views.decorators.http import require_GET

from portal.locale import language_set
from portal.readiness import readyz

# Django's admin signs in through allauth (email verification, rate limits), never on its own form.
admin.site.login = secure_admin_login(admin.site.login)


@require_GET
def healthz(request):
    """For load balancers (and the benchmark's baseline): answers through the whole middleware stack,
    touching neither the database nor the cache."""
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("language/", language_set, name="language_set"),
    path("", include("portal.student.urls")),
    path("console/", include("portal.console.urls")),
    path("accounts/", include("allauth.urls")),
    path("billing/", include("billing.urls")),
    path("admin/", admin.site.urls),
]
# MEDIA_ROOT holds private documents (receipts): it is never served as files, in development or
# production. Downloads go through views that check who is asking.
