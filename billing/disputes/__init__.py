"""Disputes (chargebacks), one module per idea: `holds` applies Stripe's dispute events to the
lot's hours; `evidence` is the console's workflow (draft, submit, accept); `texts` writes the
evidence from our records."""
