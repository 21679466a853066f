"""Stripe's dispute and file endpoints, which localstripe lacks, answered at the HTTP boundary.

`DisputeStub` puts a LossyProxy in front of localstripe: every other request goes through to it,
while updating, closing a dispute and uploading a file are answered the way Stripe's API reference
shows, from one dispute object the test gives. Each of those requests is recorded, parsed as Stripe
would read it, so a test can assert what was sent; `fail` makes an endpoint answer with an error.
"""

import copy
import re
import secrets
import time
from contextlib import contextmanager
from urllib.parse import parse_qs

from billing.tests.network import LossyProxy

ERROR_TYPES = {400: "invalid_request_error", 404: "invalid_request_error", 500: "api_error"}
FILE_TYPES = {".pdf": "pdf", ".jpg": "jpg", ".png": "png"}


class DisputeStub:
    def __init__(self, upstream, dispute_object):
        self.dispute = copy.deepcopy(dispute_object)
        self.dispute.setdefault("evidence", {})
        self.dispute["evidence_details"].setdefault("submission_count", 0)
        self.requests = []  # (endpoint, what Stripe would read) in the order they came
        self.failures = {}
        dispute_path = re.escape(f"/v1/disputes/{dispute_object['id']}")
        self.proxy = LossyProxy(
            upstream,
            canned={
                rf"^POST {dispute_path}/close$": self._close,
                rf"^POST {dispute_path}$": self._update,
                r"^POST /v1/files$": self._upload,
            },
        )
        self.url = self.proxy.url

    def close(self):
        self.proxy.close()

    def fail(self, endpoint, status, message="An unknown error occurred."):
        """Answer `endpoint` ("update", "close" or "upload") with a Stripe error from now on."""
        self.failures[endpoint] = (
            status,
            {"error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}},
        )

    def sent(self, endpoint):
        return [request for name, request in self.requests if name == endpoint]

    def _update(self, body):
        form = {key: values[-1] for key, values in parse_qs(body.decode(), keep_blank_values=True).items()}
        self.requests.append(("update", form))
        if "update" in self.failures:
            return self.failures["update"]
        if self.dispute["status"] not in ("needs_response", "warning_needs_response"):
            # Stripe's words here are illustrative: it refuses evidence once a dispute left needs_response.
            return 400, {"error": {"type": "invalid_request_error", "message": "This dispute is already closed."}}
        for key, value in form.items():
            if match := re.fullmatch(r"evidence\[(\w+)\]", key):
                self.dispute["evidence"][match[1]] = value
        self.dispute["evidence_details"]["has_evidence"] = True
        if form.get("submit") == "true":
            self.dispute["status"] = self.dispute["status"].replace("needs_response", "under_review")
            self.dispute["evidence_details"]["submission_count"] += 1
        return 200, self.dispute

    def _close(self, body):
        self.requests.append(("close", {}))
        if "close" in self.failures:
            return self.failures["close"]
        self.dispute["status"] = "warning_closed" if self.dispute["status"].startswith("warning") else "lost"
        return 200, self.dispute

    def _upload(self, body):
        upload = _multipart(body)
        self.requests.append(("upload", upload))
        if "upload" in self.failures:
            return self.failures["upload"]
        file_id = f"file_{secrets.token_hex(12)}"
        upload["answered_id"] = file_id  # not sent: what Stripe answered, for the test to follow the file
        filename = upload["file"]["filename"]
        now = int(time.time())
        return 200, {
            "id": file_id,
            "object": "file",
            "created": now,
            "expires_at": now + 365 * 86400,
            "filename": filename,
            "links": {"object": "list", "data": [], "has_more": False, "url": f"/v1/file_links?file={file_id}"},
            "purpose": upload["purpose"],
            "size": len(upload["file"]["content"]),
            "title": None,
            "type": FILE_TYPES.get(filename[filename.rfind(".") :].lower()),
            "url": f"https://files.stripe.com/v1/files/{file_id}/contents",
        }


def _multipart(body):
    """A multipart/form-data body as {name: text}, a file part as {filename, content_type, content}.
    Split by hand: the email parser may rewrite line endings inside a binary PDF."""
    delimiter = body.split(b"\r\n", 1)[0]
    fields = {}
    for part in body.split(delimiter)[1:-1]:
        head, content = part[2:-2].split(b"\r\n\r\n", 1)  # each part: CRLF, headers, blank line, content, CRLF
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        disposition = headers["Content-Disposition"]
        name = re.search(r'name="([^"]*)"', disposition)[1]
        filename = re.search(r'filename="([^"]*)"', disposition)
        if filename:
            fields[name] = {"filename": filename[1], "content_type": headers.get("Content-Type"), "content": content}
        else:
            fields[name] = content.decode()
    return fields


@contextmanager
def stripe_disputes(localstripe, settings, dispute_object):
    """Inside this block Stripe knows `dispute_object` and takes evidence files (as `DisputeStub`)."""
    stub = DisputeStub(localstripe.url, dispute_object)
    settings.STRIPE_API_BASE = stub.url
    try:
        yield stub
    finally:
        stub.close()
        settings.STRIPE_API_BASE = localstripe.url
