"""The statement forms as the account page, the error page and the console's student page show them:
a refused form as it came back (`statement_form` in the context), else last calendar month."""

from django import template

from portal.statements import StatementEmailsForm, StatementRangeForm

register = template.Library()


@register.simple_tag(takes_context=True)
def statement_range_form(context, account):
    if "statement_form" in context:
        return context["statement_form"]
    request = context.get("request")
    if request is not None and request.user.pk == account.user_id:
        account.user = request.user  # the student's own page: their zone, without reading them again
    return StatementRangeForm.for_account(account)


@register.simple_tag
def statement_emails_form(account):
    return StatementEmailsForm(initial={"statement_emails": account.statement_emails})
