"""The System page in Chromium: a Support member opens it from the console's navigation and reads the
periodic jobs (a late one marked in words, a failed one with its error), the queue and the ledger's
drift; axe-core checks it, and at a phone's 390 px nothing scrolls sideways."""

from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import expect

from billing.jobs import periodic_jobs
from billing.models import JobRun
from billing.tests.builders import job_run, make_console_user
from e2e.test_console import console_sign_in

SUPPORT = "sol.support@example.com"


def test_support_reads_how_the_background_jobs_ran(page, live_server, screenshot):
    now = timezone.now()
    for job in periodic_jobs():
        job_run(job.name, started_at=now - timedelta(seconds=30), result=0, duration_ms=85)
    JobRun.objects.filter(task="billing.tasks.reconcile_refunds").update(started_at=now - timedelta(hours=1))
    job_run(
        "billing.tasks.fetch_missed_events",
        started_at=now - timedelta(seconds=10),
        outcome=JobRun.Outcome.FAILED,
        error="ProviderUnavailable: Stripe did not answer",
    )
    job_run("billing.tasks.check_ledger", started_at=now - timedelta(seconds=5), result=2)
    make_console_user(SUPPORT, role="Support")
    console_sign_in(page, live_server, SUPPORT)

    page.get_by_role("navigation", name="Console").get_by_role("link", name="System").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("System")
    jobs = page.get_by_role("table", name="Periodic jobs")
    expect(jobs.locator("tbody tr")).to_have_count(len(periodic_jobs()))
    late = jobs.get_by_role("row").filter(has_text="reconcile_refunds")
    expect(late).to_contain_text("Late")
    expect(late).to_contain_text("Every 5 minutes")
    failed = jobs.get_by_role("row").filter(has_text="fetch_missed_events")
    expect(failed).to_contain_text("Failed")
    expect(failed).to_contain_text("ProviderUnavailable: Stripe did not answer")
    expect(jobs.get_by_role("row").filter(has_text="scan_alerts")).not_to_contain_text("Late")
    expect(page.get_by_text("Late jobs")).to_be_visible()
    expect(page.locator(".figure", has_text="Ledger drift")).to_contain_text("2")

    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the System page fits a phone's width"
    screenshot(page, "console-system-390")
