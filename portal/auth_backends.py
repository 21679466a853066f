"""allauth's authentication backend, reading a signed-in student's hours account with the user.

Every student page needs the account (its version keys the cached pages and answers live-update
polls), so the user and the account come in one query instead of two.
"""

from allauth.account.auth_backends import AuthenticationBackend
from django.contrib.auth import get_user_model


class AccountAuthenticationBackend(AuthenticationBackend):
    def get_user(self, user_id):
        try:
            user = get_user_model()._default_manager.select_related("account").get(pk=user_id)
        except get_user_model().DoesNotExist:
            return None
        return user if self.user_can_authenticate(user) else None
