"""The Django admin, behind the console's rule: a staff member with TOTP set up who gave a code in
this session (portal.console.access.second_factor_redirect), and for a change a code as recent as a
Finance action needs. Sign-in itself goes through allauth
(portal/urls.py), so a password alone never opens it."""

from functools import wraps

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from portal.admin_input import bad_input_refused
from portal.console.access import fresh_code_redirect, second_factor_redirect


class PortalAdminSite(admin.AdminSite):
    site_header = _("Tutoring Hours administration")
    site_title = _("Tutoring Hours admin")

    def register(self, model_or_iterable, admin_class=None, **options):
        # Every registration, allauth's and Django's too, answers bad input with a message or a form error.
        super().register(model_or_iterable, bad_input_refused(admin_class or admin.ModelAdmin), **options)

    def admin_view(self, view, cacheable=False):
        @wraps(view)
        def second_factor_required(request, *args, **kwargs):
            # Signing out must stay possible for whoever has no second factor yet.
            if view == self.logout:
                return view(request, *args, **kwargs)
            if redirect := second_factor_redirect(request):
                return redirect
            # A change here can make anyone Finance: it needs a code as recent as a refund does.
            if request.method == "POST" and (redirect := fresh_code_redirect(request)):
                return redirect
            return view(request, *args, **kwargs)

        return super().admin_view(second_factor_required, cacheable)
