"""When a periodic Huey task is due: its crontab read back from Huey, shown as crontab text and walked
to the moments it was due before a given moment, and the next one after it.

Huey keeps a crontab only as a test function (`validate_datetime`) whose parsed fields live in its
closure; it offers no way to read them back. They are read from there (huey is pinned in
requirements.txt, and billing/tests/test_job_runs.py fails if a new version moves them), so the
times below are Huey's own parsing, never a second reading of the crontab strings. Huey matches
them against UTC (settings.HUEY["utc"]), and so does this module.
"""

from datetime import UTC, datetime, time, timedelta
from itertools import islice

# A crontab that can never match (the 31st of February) is walked this far and no further.
SEARCH_DAYS = 4 * 366
# Huey's order of the parsed fields, and the values "*" stands for in each.
FIELDS = ("months", "days", "weekdays", "hours", "minutes")
EVERY = {
    "months": frozenset(range(1, 13)),
    "days": frozenset(range(1, 32)),
    "weekdays": frozenset(range(7)),
    "hours": frozenset(range(24)),
    "minutes": frozenset(range(60)),
}
# Crontab text names the fields in another order: minute hour day month day-of-week.
CRONTAB_ORDER = ("minutes", "hours", "days", "months", "weekdays")


class Schedule:
    """The moments of a crontab: each of its fields as the set of values it matches."""

    def __init__(self, *, months, days, weekdays, hours, minutes):
        self.months = frozenset(months)
        self.days = frozenset(days)
        # Huey numbers Sunday 0 and also takes 7 for it.
        self.weekdays = frozenset(day % 7 for day in weekdays)
        self.hours = sorted(hours)
        self.minutes = sorted(minutes)

    @classmethod
    def of(cls, task_class):
        """The schedule of a periodic task's class, or None for one whose test is not a crontab."""
        fields = _crontab_fields(getattr(task_class, "validate_datetime", None))
        return cls(**dict(zip(FIELDS, fields, strict=True))) if fields else None

    @property
    def crontab(self):
        """The crontab line ("*/5 * * * *"): minute, hour, day, month and day of the week."""
        return " ".join(_field_text(set(getattr(self, name)), EVERY[name]) for name in CRONTAB_ORDER)

    @property
    def every_minutes(self):
        """N for a crontab that runs every N minutes around the clock (every minute: 1), else None."""
        if set(self.hours) != EVERY["hours"] or not self._every_day():
            return None
        step = _step_from_start(set(self.minutes), EVERY["minutes"])
        return step if step and 60 % step == 0 else None

    def moments_before(self, moment, count):
        """The `count` most recent moments it was due strictly before `moment`, newest first (fewer
        when the crontab matches less often than that within SEARCH_DAYS)."""
        return list(islice(self._backward(moment.astimezone(UTC)), count))

    def next_after(self, moment):
        """The first moment it is due strictly after `moment` (None if none within SEARCH_DAYS)."""
        return next(self._forward(moment.astimezone(UTC)), None)

    def _every_day(self):
        return self.months == EVERY["months"] and self.days == EVERY["days"] and self.weekdays == EVERY["weekdays"]

    def _runs_on(self, day):
        # Huey's day of the week: Sunday 0 ... Saturday 6.
        return day.month in self.months and day.day in self.days and (day.weekday() + 1) % 7 in self.weekdays

    def _day_moments(self, day):
        for hour in self.hours:
            for minute in self.minutes:
                yield datetime.combine(day, time(hour, minute), tzinfo=UTC)

    def _backward(self, moment):
        day = moment.date()
        for _ in range(SEARCH_DAYS):
            if self._runs_on(day):
                yield from (due for due in reversed(list(self._day_moments(day))) if due < moment)
            day -= timedelta(days=1)

    def _forward(self, moment):
        day = moment.date()
        for _ in range(SEARCH_DAYS):
            if self._runs_on(day):
                yield from (due for due in self._day_moments(day) if due > moment)
            day += timedelta(days=1)


def _crontab_fields(validate_datetime):
    """The five fields huey.crontab parsed, held in the closure of its test function, which a periodic
    task's `validate_datetime` holds in its own; None for a test that is not a crontab."""
    crontab_test = _closed_over(validate_datetime).get("validate_datetime")
    return _closed_over(crontab_test).get("cron_settings")


def _closed_over(function):
    """{name: value} of what a function's closure holds."""
    code = getattr(function, "__code__", None)
    if code is None:
        return {}
    return dict(zip(code.co_freevars, (cell.cell_contents for cell in function.__closure__ or ()), strict=True))


def _field_text(values, every):
    if values >= every:
        return "*"
    step = _step_from_start(values, every)
    if step and len(values) > 1:
        return f"*/{step}"
    return ",".join(_runs_text(sorted(values)))


def _step_from_start(values, every):
    """N when `values` are every Nth value from the first one of the field (what "*/N" means)."""
    ordered, first = sorted(values), min(every)
    if not ordered or ordered[0] != first:
        return None
    step = ordered[1] - ordered[0] if len(ordered) > 1 else len(every)
    return step if ordered == sorted(every)[::step] else None


def _runs_text(ordered):
    """[6, 7, 8, 23] -> ["6-8", "23"]."""
    start = previous = ordered[0]
    for value in [*ordered[1:], None]:
        if value is not None and value == previous + 1:
            previous = value
            continue
        yield str(start) if start == previous else f"{start}-{previous}"
        if value is not None:
            start = previous = value
