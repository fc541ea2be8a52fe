"""The default intent label set: what the synthetic feed uses and ingest accepts.

A label outside this set is quarantined at ingest (rule `unknown_intent`) instead of being
trained on silently. Point `INTENTFLOW_LABELS` at a text file (one label a line) to use your own.
"""

from __future__ import annotations

from ml.config import labels_file

INTENTS: dict[str, str] = {
    "billing_dispute": "the customer disputes a charge on their bill",
    "refund_request": "the customer wants money back for a purchase",
    "lost_card": "a payment card was lost or stolen",
    "delivery_delay": "an order has not arrived when expected",
    "password_reset": "the customer cannot sign in and wants a new password",
    "cancel_subscription": "the customer wants to end a subscription",
    "change_address": "the customer wants to change their postal address",
    "update_payment_method": "the customer wants to change the card or account they pay with",
    "order_status": "the customer asks where an order is",
    "return_item": "the customer wants to send a product back",
    "damaged_item": "a product arrived broken",
    "wrong_item": "the customer received a different product than ordered",
    "account_locked": "the account was locked or suspended",
    "upgrade_plan": "the customer wants a bigger plan",
    "downgrade_plan": "the customer wants a smaller or cheaper plan",
    "technical_issue": "the app or service does not work",
    "invoice_request": "the customer needs an invoice or receipt",
    "promo_code": "a discount or promo code does not work",
    "close_account": "the customer wants their account deleted",
    "report_fraud": "the customer reports a transaction they did not make",
    "change_email": "the customer wants to change the e-mail on file",
    "schedule_callback": "the customer wants a call back",
    "product_availability": "the customer asks if a product is in stock",
    "loyalty_points": "the customer asks about reward points",
}


def known_intents() -> frozenset[str]:
    """The accepted label set: `INTENTFLOW_LABELS` (a file) if set, else :data:`INTENTS`."""
    path = labels_file()
    if path is None:
        return frozenset(INTENTS)
    labels = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return frozenset(label for label in labels if label and not label.startswith("#"))
