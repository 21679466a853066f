"""Fraud flags, one module per idea: `rules` raises flags (Stripe's early fraud warnings, our own
rules after each payment attempt and in a periodic scan); `review` is what staff do with a flag
(clear, confirm, note); `blocks` stops an account from buying, or lets it buy again."""
