"""Test helpers around a real localstripe process, spoken to over HTTP.

`browser_confirm_setup` and `browser_authenticate` do what Stripe.js does in a student's browser
(they post the same requests the stand-in's Stripe.js posts), so service tests can run the card
and 3-D Secure flows without a browser; the e2e tests run them through the real page.
"""

import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

PUBLISHABLE_KEY = "pk_test_portal"
SECRET_KEY = "sk_test_portal"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalStripe:
    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        executable = Path(sys.executable).parent / "localstripe"
        self.process = subprocess.Popen(
            [str(executable), "--port", str(self.port), "--from-scratch"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                self.get("/v1/customers")
                return
            except requests.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("localstripe did not start") from None
                time.sleep(0.1)

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)

    def reset(self):
        requests.delete(f"{self.url}/_config/data", timeout=5).raise_for_status()

    def get(self, path, **params):
        response = requests.get(f"{self.url}{path}", params=params, auth=(SECRET_KEY, ""), timeout=5)
        response.raise_for_status()
        return response.json()

    def payment_intents(self):
        return self.get("/v1/payment_intents", limit=100)["data"]

    def browser_confirm_setup(self, setup_intent, number, exp_month=12, exp_year=2034, cvc="123"):
        """Confirm a SetupIntent with a card number, as Stripe.js does. Returns Stripe's answer."""
        response = requests.post(
            f"{self.url}/v1/setup_intents/{setup_intent.id}/confirm",
            json={
                "key": PUBLISHABLE_KEY,
                "use_stripe_sdk": True,
                "client_secret": setup_intent.client_secret,
                "payment_method_data": {
                    "type": "card",
                    "card": {"number": number, "exp_month": exp_month, "exp_year": exp_year, "cvc": cvc},
                },
            },
            timeout=5,
        )
        answer = response.json()
        if answer.get("status") == "requires_action":  # a 3-D Secure card: the student completes it
            answer = requests.post(
                f"{self.url}/v1/setup_intents/{setup_intent.id}/confirm",
                json={"key": PUBLISHABLE_KEY, "use_stripe_sdk": True, "client_secret": setup_intent.client_secret},
                timeout=5,
            ).json()
        return answer

    def browser_authenticate(self, client_secret, *, success):
        """Complete (or fail) 3-D Secure on a PaymentIntent, as Stripe.js's confirmCardPayment does."""
        intent_id = client_secret.split("_secret_")[0]
        return requests.post(
            f"{self.url}/v1/payment_intents/{intent_id}/_authenticate",
            params={"success": "true" if success else "false"},
            json={"key": PUBLISHABLE_KEY, "client_secret": client_secret},
            timeout=5,
        )

    def post(self, path, **data):
        response = requests.post(f"{self.url}{path}", data=data, auth=(SECRET_KEY, ""), timeout=5)
        response.raise_for_status()
        return response.json()

    def register_webhook(self, name, url, secret, events=None):
        """Have localstripe deliver its events (signed with `secret`) to `url`."""
        data = {"url": url, "secret": secret}
        if events is not None:
            data["events"] = events
        requests.post(f"{self.url}/_config/webhooks/{name}", json=data, timeout=5).raise_for_status()
