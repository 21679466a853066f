"""Domain errors of the billing domain. Each carries a message fit to show a student or staff."""


class BillingError(Exception):
    """Base of every error a view may turn into a message."""


class LedgerError(BillingError):
    """A ledger operation that can never be valid as asked (zero hours, no reason, ...)."""


class InsufficientHours(BillingError):
    def __init__(self, *, available_minutes, requested_minutes):
        self.available_minutes = available_minutes
        self.requested_minutes = requested_minutes
        super().__init__(f"Not enough hours: {requested_minutes} minutes requested, {available_minutes} available.")


class LotExpired(BillingError):
    def __init__(self, lot):
        self.lot = lot
        super().__init__(f"{lot.name} expired on {lot.expires_at:%d %b %Y}; its hours can no longer change.")
