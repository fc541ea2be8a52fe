"""Synthetic customer-service chat transcripts, written as daily JSONL drops.

Each day is generated from its own `random.Random`, seeded from (seed, day), so a day's files are
byte-identical whatever range a call covers. The data is meant to be *hard enough*: paraphrased
openings, typos, vague starts and templates that borrow a neighbouring intent's vocabulary keep a
fine-tuned model below 100%. A small share of lines is deliberately broken so that ingest's
quarantine rules have something to catch, and fake PII is seeded so that redaction can be tested.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from ml.progress import Progress
from ml.taxonomy import INTENTS
from ml.transcript import CHANNELS, SPEAKERS

SOURCE = "synthetic"
LINES_PER_FILE = 500
PII_KINDS = ("email", "phone", "card", "order_id", "name")
# Each is the ingest quarantine rule it is meant to trip.
BROKEN_KINDS = ("malformed_json", "missing_field", "empty_text", "unknown_intent", "duplicate_id")
UNKNOWN_INTENTS = ("pizza_order", "book_flight", "weather_query", "car_rental", "song_request")
REQUIRED_FIELDS = ("conversation_id", "turns", "started_at")

PII_SHARE = 0.40  # conversations that carry any PII
TYPO_SHARE = 0.15  # customer turns with a typo
UNCLEAR_SHARE = 0.10  # conversations whose customer text names only a family of intents
VAGUE_SHARE = 0.06  # conversations that open with small talk; the request comes second

CUSTOMER, AGENT, SYSTEM = SPEAKERS

# Mostly chat; the other channels exist in real feeds in smaller numbers.
CHANNEL_WEIGHTS = dict(zip(CHANNELS, (70, 12, 10, 8), strict=True))
LANGUAGE_WEIGHTS = {"en": 85, "en-US": 8, "en-GB": 7}
# Skewed like a real contact centre: "where is my order" dominates.
INTENT_WEIGHTS = {
    name: {
        "order_status": 3.0,
        "delivery_delay": 2.5,
        "refund_request": 2.5,
        "password_reset": 2.0,
        "technical_issue": 2.0,
        "return_item": 1.5,
        "billing_dispute": 1.5,
        "cancel_subscription": 1.5,
    }.get(name, 1.0)
    for name in INTENTS
}

# --- Shared slot fillers -------------------------------------------------------------------------

PRODUCTS = (
    "wireless headphones", "pair of running shoes", "coffee maker", "phone case", "winter jacket",
    "desk lamp", "blender", "smartwatch", "backpack", "yoga mat", "air fryer", "bluetooth speaker",
    "laptop stand", "kettle", "office chair", "rain jacket", "gaming mouse", "electric toothbrush",
    "baby monitor", "standing desk",
)  # fmt: skip
PLANS = ("Lite", "Basic", "Plus", "Premium", "Pro", "Business")  # cheapest first
SERVICES = (
    "streaming subscription", "membership", "meal kit subscription", "magazine subscription",
    "cloud storage plan", "gym membership", "premium account", "monthly box",
)  # fmt: skip
MERCHANTS = (
    "QuickMart", "Skyline Air", "Streamly", "FreshBox", "GameHub", "CityCab", "BookNook",
    "Pixel Store", "Nordic Fuel", "Urban Eats", "TechTown", "Sunset Hotels",
)  # fmt: skip
CITIES = ("Leeds", "Austin", "Denver", "Bristol", "Portland", "Manchester", "Chicago", "Glasgow")
DEVICES = ("iPhone", "Android phone", "laptop", "smart TV", "tablet", "Chromebook")
ERRORS = (
    "error 503", "a blank white screen", "'Something went wrong'", "error code E-102",
    "a spinning wheel", "'Unable to connect'",
)  # fmt: skip
CODES = ("SAVE20", "WELCOME10", "SPRING25", "FREESHIP", "VIP15", "BLACKFRIDAY", "THANKYOU5")
WHEN = (
    "yesterday", "last Tuesday", "last week", "two weeks ago", "on Monday", "on the 3rd",
    "on March 14", "a few days ago", "earlier this month",
)  # fmt: skip
DATES = ("March 14", "the 3rd", "12 April", "last Friday", "the 21st", "June 2", "10/09")
CALL_TIMES = (
    "tomorrow morning", "after 5pm", "on Thursday afternoon", "between 2 and 4 today",
    "before noon", "this evening", "any time on Friday",
)  # fmt: skip
FIRST_NAMES = (
    "Maria", "James", "Aisha", "Chen", "Olivia", "Mohammed", "Sofia", "Liam", "Priya", "Noah",
    "Emma", "Kwame", "Hannah", "Diego", "Yuki", "Fatima", "Oliver", "Chloe", "Ravi", "Grace",
    "Lukas", "Amara", "Ethan", "Zoë", "José", "Siobhán", "Mateo", "Ingrid", "Tom", "Nia",
)  # fmt: skip
LAST_NAMES = (
    "Lopez", "Smith", "Khan", "Wang", "Johnson", "Okafor", "Rossi", "Murphy", "Patel", "Nguyen",
    "García", "Brown", "Schmidt", "Kowalski", "Tanaka", "O'Brien", "Müller", "Andersen", "Silva",
    "Evans", "Taylor", "Haddad", "Novak", "Fischer",
)  # fmt: skip
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com", "inbox.example")

# --- Customer openings: >= 8 paraphrases per intent, then a few that borrow a neighbour's words --

OPENINGS: dict[str, tuple[str, ...]] = {
    "billing_dispute": (
        "I was charged {amount} twice this month, can you fix my bill?",
        "My latest bill is {amount} higher than it should be.",
        "Why does my invoice show a {amount} fee I never agreed to?",
        "I want to dispute a charge on my last statement.",
        "You billed me for the {high_plan} plan but I'm on {low_plan}.",
        "I've been overcharged again, the bill says {amount} instead of the usual price.",
        "There's a late payment fee on my account but I paid on time.",
        "Can someone explain the extra {amount} on this month's bill? It looks wrong.",
        "I'm disputing the {amount} charge from {date}, it's not what I was quoted.",
        # neighbours: report_fraud, refund_request
        "There's a charge from {merchant} on my bill that doesn't match what I bought.",
        "I cancelled weeks ago and you still charged me {amount}, that charge is wrong.",
    ),
    "refund_request": (
        "I'd like a refund for my {product}, please.",
        "Can I get my money back for the order I placed {when}?",
        "How do I request a refund? The {product} wasn't what I expected.",
        "I want a full refund of the {amount} I paid.",
        "Please refund me, I was never able to use the {service}.",
        "Is it possible to get a refund on a purchase from {date}?",
        "I'm still waiting on my refund of {amount}, it's been {days} days.",
        "The event was cancelled so I need my {amount} back.",
        # neighbour: return_item
        "I already sent the {product} back, when will I see the money on my card?",
        "The return was received last week but I haven't been refunded the {amount} yet.",
        "I don't want to send the {product} back, I just want my money refunded.",
    ),
    "lost_card": (
        "I lost my debit card, can you block it?",
        "My wallet was stolen with my credit card in it.",
        "I can't find my card anywhere, I think I left it at {merchant}.",
        "Please freeze my card, it's missing.",
        "I need a replacement card, mine was lost on holiday.",
        "Someone stole my bag and my bank card was inside.",
        "My card fell out of my pocket somewhere in {city}.",
        "How do I order a new card? The old one is gone.",
        # neighbour: report_fraud
        "My card was stolen and I'm worried someone will use it, please cancel it.",
        "I lost my card {when}, can you check nobody has used it?",
    ),
    "report_fraud": (
        "There's a transaction from {merchant} for {amount} that I didn't make.",
        "I think my account has been hacked, there are payments I don't recognise.",
        "Someone used my card to buy things online without my permission.",
        "I want to report a fraudulent charge of {amount}.",
        "I never authorised a payment to {merchant} on {date}.",
        "There are three purchases on my card I didn't make.",
        "I got an alert for a {amount} purchase in {city} but I'm at home.",
        "My card is still in my wallet but it's been charged by {merchant}, this is fraud.",
        # neighbours: lost_card, billing_dispute
        "I still have my card but someone spent {amount} with it, please block it.",
        "After I lost my card there was a {amount} charge from {merchant} I didn't make.",
        "There's a charge from {merchant} on my statement I don't recognise at all.",
    ),
    "delivery_delay": (
        "My order was supposed to arrive {when} and it's still not here.",
        "The delivery is {days} days late, what's going on?",
        "Why is my package taking so long? It said 2-day shipping.",
        "I still haven't received my {product}, it's way past the delivery date.",
        "The courier keeps pushing back my delivery.",
        "My parcel has been stuck 'in transit' for a week.",
        "It's been {days} days and the {product} hasn't arrived.",
        "I needed this by {date} for a birthday, why is it late?",
        # neighbour: order_status
        "Where is my order? It should have been here {when}.",
        "Tracking hasn't updated in days and the delivery date has passed.",
    ),
    "order_status": (
        "Where is my order?",
        "Can you tell me the status of my order for a {product}?",
        "Has my order shipped yet?",
        "When will my {product} be delivered?",
        "I placed an order {when}, can you check where it is?",
        "Is there a tracking number for my order?",
        "Can you confirm my order went through? I never got a confirmation.",
        "What's the expected delivery date for my order?",
        # neighbour: delivery_delay
        "My order hasn't arrived yet, can you check where it is now?",
        "I'm still waiting on the {product}, could you tell me when it's coming?",
    ),
    "password_reset": (
        "I forgot my password, how can I reset it?",
        "I can't log in, I need a new password.",
        "The password reset link isn't arriving in my inbox.",
        "Can you send me a password reset email?",
        "I don't remember my password for the app.",
        "The reset link says it expired, can I get another one?",
        "How do I change my password? I can't remember the old one.",
        "I keep getting 'incorrect password' when I try to sign in.",
        # neighbour: account_locked
        "I entered the wrong password too many times, can I just reset it?",
        "I can't sign in to my account, I think I need to reset my password.",
    ),
    "account_locked": (
        "My account has been locked, how do I get back in?",
        "It says my account is suspended, why?",
        "I'm locked out of my account after too many attempts.",
        "Why was my account disabled?",
        "I got a message saying my account is temporarily blocked.",
        "Can you unlock my account please?",
        "My account was frozen for suspicious activity but it was me.",
        "I can't access my account, it says it's been deactivated.",
        # neighbour: password_reset
        "I reset my password but the account is still locked.",
        "I can't log in, it says too many failed password attempts.",
    ),
    "upgrade_plan": (
        "I'd like to upgrade to the {high_plan} plan.",
        "How do I move from {low_plan} to {high_plan}?",
        "I need more storage, what bigger plans do you have?",
        "Can I switch to a plan with more data?",
        "What's the price of upgrading to {high_plan}?",
        "We're adding users, so we need a larger plan.",
        "Please upgrade my subscription to {high_plan} starting today.",
        "I keep hitting my limit, can I get a higher tier?",
        # neighbour: downgrade_plan (the plan names carry the direction)
        "I want to change my plan, {low_plan} isn't enough anymore.",
        "Can you switch me to {high_plan}?",
        "Can I change plans? I'd like {high_plan} from next month.",
    ),
    "downgrade_plan": (
        "I'd like to downgrade to the {low_plan} plan.",
        "How do I move from {high_plan} down to {low_plan}?",
        "I'm paying too much, is there a cheaper plan?",
        "Can I switch to a smaller plan? I barely use it.",
        "Please put me on the basic tier from next month.",
        "I don't need all the {high_plan} features anymore.",
        "What's the cheapest plan you offer? I want to switch to it.",
        "Can I reduce my plan instead of cancelling?",
        # neighbour: upgrade_plan
        "I want to change my plan, {high_plan} is more than I need.",
        "Can you switch me to {low_plan}?",
        "Can I change plans? I'd like {low_plan} from next month.",
    ),
    "technical_issue": (
        "The app keeps crashing when I open it.",
        "I'm getting {error} on the website.",
        "Your website won't load on my {device}.",
        "The app freezes every time I try to pay.",
        "Nothing happens when I press the checkout button.",
        "Streaming keeps buffering even though my internet is fine.",
        "I can't upload files, it just spins forever.",
        "Since the last update the app won't open on my {device}.",
        "Notifications stopped working on my {device}.",
        # neighbour: password_reset
        "The login page shows {error} and won't let me in.",
    ),
    "invoice_request": (
        "Can you send me an invoice for my last order?",
        "I need a receipt for the {amount} payment for my expenses.",
        "Where can I download my invoices?",
        "Please email me a VAT invoice for {date}.",
        "I need a copy of my bill from {date}.",
        "Could I get an itemised receipt for the {product}?",
        "My company needs an invoice with our business name on it.",
        "I lost the receipt for my purchase, can you resend it?",
        # neighbour: billing_dispute
        "Can you send me the invoice for {date}? I need to check the amount.",
    ),
    "promo_code": (
        "My promo code {code} isn't working.",
        "The discount code {code} says it's invalid.",
        "I tried to use {code} at checkout but no discount was applied.",
        "Is {code} still valid? It won't apply.",
        "I got a voucher by email but it won't work on my order.",
        "The 20% off code isn't being accepted.",
        "Why can't I use my coupon on the {product}?",
        "I forgot to add my promo code {code}, can you apply it now?",
        # neighbour: refund_request
        "I forgot to apply {code}, can I get the discount refunded?",
    ),
    "close_account": (
        "I want to delete my account.",
        "Please close my account permanently.",
        "How do I remove all my data and close my account?",
        "I don't use your service anymore, please delete my profile.",
        "Can you deactivate and erase my account?",
        "I'd like my account and personal data deleted under GDPR.",
        "Close my account please, I'm moving to another provider.",
        "How can I permanently delete my account from the app?",
        # neighbour: cancel_subscription
        "Cancel everything and delete my account, I'm done.",
    ),
    "cancel_subscription": (
        "I want to cancel my {service}.",
        "How do I stop my subscription from renewing?",
        "Please cancel my membership at the end of the month.",
        "I'd like to end my subscription.",
        "Can you stop the monthly payments for my {service}?",
        "I don't want to renew, please cancel.",
        "Cancel my {high_plan} subscription please.",
        "How do I turn off auto-renew?",
        # neighbours: close_account, downgrade_plan
        "I want to cancel my subscription but keep my account.",
        "Please cancel my {service}, I won't be using it anymore.",
    ),
    "change_address": (
        "I've moved, can I update my address?",
        "I need to change my delivery address.",
        "Please update my postal address to my new flat in {city}.",
        "Can I change the shipping address on my account?",
        "My address is wrong on my profile.",
        "How do I update my billing address?",
        "I'm relocating to {city} next month, where do I change my address?",
        "Can you send my future orders to a new address?",
        # neighbour: order_status
        "Can I change the address on an order that's already shipped?",
    ),
    "update_payment_method": (
        "I need to update my card details.",
        "My card expired, how do I add a new one?",
        "Can I change the card I pay with?",
        "I'd like to pay by PayPal instead of card.",
        "Please switch my payments to my new bank account.",
        "How do I remove my old card and add a new one?",
        "My payment failed because the card on file is old.",
        "I got a new debit card, can you update it on my account?",
        # neighbour: lost_card
        "I lost my card and need to put the replacement on my account for payments.",
    ),
    "damaged_item": (
        "My {product} arrived broken.",
        "The box was crushed and the {product} inside is damaged.",
        "The {product} was cracked when I opened it.",
        "Half the items in my order arrived damaged.",
        "The {product} has a big scratch and a dent straight out of the box.",
        "My {product} doesn't work, it looks like it was damaged in shipping.",
        "The glass on the {product} is smashed.",
        "It arrived leaking and ruined the rest of the package.",
        # neighbour: return_item
        "My {product} arrived broken, what do I do with it?",
    ),
    "wrong_item": (
        "I ordered a {product} but received a {product2}.",
        "You sent me the wrong item.",
        "This isn't what I ordered, I got the wrong colour.",
        "The package had someone else's order in it.",
        "I got the wrong size {product}.",
        "The {product} I received is a different model from the one I paid for.",
        "My order came with the wrong item inside.",
        "I received a {product2} instead of my {product}.",
        # neighbour: return_item
        "You sent the wrong {product}, how do I get the right one?",
    ),
    "return_item": (
        "How do I return a {product}?",
        "I'd like to send back the {product} I bought {when}.",
        "Can I get a return label for my order?",
        "The {product} doesn't fit, I want to return it.",
        "What's your return policy? I need to send something back.",
        "I changed my mind about the {product}, can I still return it?",
        "Where do I drop off a return?",
        "I want to return two items from my last order.",
        # neighbours: refund_request, damaged_item
        "I want to return the {product} for a refund, how do I send it back?",
        "If I send the {product} back, will I get my money back?",
        "Can I return this {product} and get the {amount} back on my card?",
    ),
    "change_email": (
        "I need to change the email on my account.",
        "How do I update my email address?",
        "I don't use my old email anymore, can you change it?",
        "Please update my contact email.",
        "Can I switch my login email to a new one?",
        "My email changed, where do I update it?",
        "I want notifications to go to a different email address.",
        "I no longer have access to the email on file, can you change it?",
        # neighbour: password_reset
        "Reset emails go to an old address I can't open, can you put my new one on?",
    ),
    "schedule_callback": (
        "Can someone call me back?",
        "I'd prefer to talk on the phone, can you schedule a call?",
        "Please have an agent ring me {call_time}.",
        "Can I book a callback for {call_time}?",
        "I'd like a call from your team about my account.",
        "Is it possible to get a phone call instead of chatting?",
        "Please call me {call_time}, I'm busy right now.",
        "Can a manager call me back today?",
    ),
    "product_availability": (
        "Is the {product} in stock?",
        "When will the {product} be available again?",
        "Do you have the {product} in a larger size?",
        "Is the {product} available in your store in {city}?",
        "The {product} says out of stock, are you getting more?",
        "Can I pre-order the new {product}?",
        "Do you still sell the {product}?",
        "Is the {product} available in black?",
        # neighbour: order_status
        "When will the {product} be back in stock so I can order it?",
    ),
    "loyalty_points": (
        "How many reward points do I have?",
        "My points from my last purchase haven't been added.",
        "How do I redeem my loyalty points?",
        "I had {points} points and now they're gone.",
        "Do my points expire?",
        "Can I use my points to pay for the {product}?",
        "I didn't get points for my order from {date}.",
        "What can I get with {points} points?",
        # neighbour: promo_code
        "My rewards voucher from points isn't working at checkout.",
    ),
}

# Follow-up details a customer adds once asked.
DETAILS: dict[str, tuple[str, ...]] = {
    "billing_dispute": ("It's the charge dated {date}.", "Normally I pay {amount2} a month."),
    "refund_request": ("I paid {amount} {when}.", "I'd prefer it back on the original card."),
    "lost_card": ("I last used it {when} at {merchant}.", "It's my main debit card."),
    "report_fraud": ("I've never even heard of {merchant}.", "It was {amount}, on {date}."),
    "delivery_delay": ("It was meant to come {when}.", "The tracking just says 'in transit'."),
    "order_status": ("I ordered it {when}.", "It's the {product}."),
    "password_reset": ("I've checked my spam folder too.", "I'm trying on the {device} app."),
    "account_locked": ("I'm trying on my {device}.", "It started {when}."),
    "upgrade_plan": ("We'd want it from this billing cycle.", "Is the price prorated?"),
    "downgrade_plan": ("From next billing cycle is fine.", "I'm on {high_plan} right now."),
    "technical_issue": ("I'm on a {device}, already reinstalled.", "I tried clearing the cache."),
    "invoice_request": ("It's for the order from {date}.", "The company name is on my profile."),
    "promo_code": ("The code is {code}.", "My basket comes to {amount}."),
    "close_account": ("Please confirm once it's done.", "I've already downloaded my data."),
    "cancel_subscription": ("It renews on {date}.", "I don't want to be charged again."),
    "change_address": ("The new one is in {city}.", "From {date} onwards."),
    "update_payment_method": ("The new card is a Visa.", "The old card expires this month."),
    "damaged_item": ("I've got photos of the damage.", "The outer box looked fine."),
    "wrong_item": ("The packing slip says {product}.", "I still need the one I ordered."),
    "return_item": ("It's unused and still in the box.", "I bought it {when}."),
    "change_email": ("I can verify with my phone.", "The new address is my work email."),
    "schedule_callback": ("Any time {call_time} works.", "It's about my last bill."),
    "product_availability": ("I'd need it by {date}.", "Happy to order online instead."),
    "loyalty_points": ("My balance shows {points}.", "I'm a gold member."),
}

# Openings that only name a family of intents. The agent's check ("is this about a refund?")
# and the customer's yes settle the label, as they would for a human reading the transcript;
# the model sees only customer text, so these are the honest, irreducible part of its error.
FAMILY_OPENINGS: dict[str, tuple[str, ...]] = {
    "money": (
        "I have a question about a payment.",
        "It's about my last bill.",
        "I need help with a charge from {date}.",
        "Something about the money on my account.",
    ),
    "card": (
        "I need help with my card.",
        "It's about my bank card.",
        "Something's wrong with my card.",
    ),
    "order": (
        "It's about my order.",
        "I have a problem with my {product} order.",
        "I need help with an order I placed {when}.",
        "There's an issue with the {product} I ordered.",
    ),
    "login": (
        "I can't get into my account.",
        "I can't sign in.",
        "I'm having trouble logging in.",
    ),
    "plan": (
        "I want to change my plan.",
        "It's about my subscription.",
        "I'd like to make a change to my {high_plan} plan.",
    ),
    "account": (
        "I need to make a change to my account.",
        "It's about my account details.",
        "I want to update something on my profile.",
    ),
    "shop": (
        "I have a question before I order.",
        "Question about buying the {product}.",
        "I'm trying to order the {product}.",
    ),
}
FAMILIES: dict[str, str] = {
    **dict.fromkeys(("billing_dispute", "refund_request", "invoice_request"), "money"),
    **dict.fromkeys(("lost_card", "report_fraud", "update_payment_method"), "card"),
    **dict.fromkeys(
        ("order_status", "delivery_delay", "wrong_item", "damaged_item", "return_item"), "order"
    ),
    **dict.fromkeys(("password_reset", "account_locked"), "login"),
    **dict.fromkeys(("upgrade_plan", "downgrade_plan", "cancel_subscription"), "plan"),
    **dict.fromkeys(("close_account", "change_email", "change_address"), "account"),
    **dict.fromkeys(("product_availability", "promo_code", "loyalty_points"), "shop"),
}
# How an agent checks what an unclear request is about.
AGENT_CHECKS: dict[str, str] = {
    "billing_dispute": "a charge on your bill that looks wrong",
    "refund_request": "getting a refund",
    "invoice_request": "a copy of an invoice or receipt",
    "lost_card": "a lost or stolen card",
    "report_fraud": "payments you didn't make",
    "update_payment_method": "changing the card you pay with",
    "order_status": "tracking where your order is",
    "delivery_delay": "a late delivery",
    "wrong_item": "receiving the wrong item",
    "damaged_item": "an item that arrived damaged",
    "return_item": "sending an item back",
    "password_reset": "resetting your password",
    "account_locked": "your account being locked",
    "upgrade_plan": "moving to a bigger plan",
    "downgrade_plan": "moving to a cheaper plan",
    "cancel_subscription": "cancelling your subscription",
    "close_account": "deleting your account",
    "change_email": "changing your email address",
    "change_address": "updating your address",
    "product_availability": "whether an item is in stock",
    "promo_code": "a promo code that isn't working",
    "loyalty_points": "your reward points",
}
AGENT_CHECK_FORMS = (
    "Just to check, is this about {}?",
    "Thanks. Am I right that this is about {}?",
    "Sure. Is this regarding {}?",
)
CONFIRMS = ("Yes, that's right.", "Yes, exactly.", "Yeah.", "Yes please.", "That's it, yes.")

# Openings that say nothing yet; the real request follows in the next customer turn.
VAGUE_OPENINGS = (
    "I need some help please.",
    "I have a problem, can you help?",
    "Quick question.",
    "Is anyone there?",
    "Can you help me with something?",
)
GREETINGS = ("", "", "", "Hi, ", "Hello, ", "Hey, ", "Good morning. ", "Hi there! ")
NAME_INTROS = (
    "Hi, this is {name}. ",
    "Hello, my name is {name}. ",
    "Hi, {name} here. ",
    "Hello, I'm {name}. ",
)
PII_DETAILS: dict[str, tuple[str, ...]] = {
    "order_id": (
        "The order number is {order_id}.",
        "It's order {order_id}.",
        "Order ref: {order_id}",
        "My order is {order_id} if that helps.",
    ),
    "email": (
        "My email is {email}.",
        "The account is under {email}.",
        "You can reach me at {email}",
        "I signed up with {email}.",
    ),
    "phone": (
        "My number is {phone}.",
        "Please use {phone}.",
        "The phone on the account is {phone}.",
        "You can call me on {phone}",
    ),
    "card": (
        "The card number is {card}.",
        "It's the card {card}.",
        "Card: {card}",
        "The number on the card is {card}.",
    ),
}
# Which PII a customer naturally volunteers for each intent.
PII_FOR_INTENT: dict[str, str] = {
    **dict.fromkeys(
        (
            "delivery_delay", "order_status", "return_item", "damaged_item", "wrong_item",
            "refund_request", "invoice_request", "promo_code", "product_availability",
        ),
        "order_id",
    ),
    **dict.fromkeys(
        ("lost_card", "report_fraud", "update_payment_method", "billing_dispute"), "card"
    ),
    **dict.fromkeys(
        (
            "password_reset", "account_locked", "change_email", "close_account",
            "cancel_subscription", "upgrade_plan", "downgrade_plan", "loyalty_points",
            "technical_issue",
        ),
        "email",
    ),
    **dict.fromkeys(("schedule_callback", "change_address"), "phone"),
}  # fmt: skip
CUSTOMER_FOLLOWUPS = (
    "Okay, thanks.",
    "Will I get an email about it?",
    "Thank you so much!",
    "No, that's everything.",
    "How long will that take?",
    "Great, appreciate it.",
    "Sure, give me a second.",
    "Perfect.",
    "Alright, I'll wait for the email.",
)

# --- Agent and system turns: polite and mostly generic -----------------------------------------

AGENT_GREETINGS = (
    "Hi, thanks for contacting support. How can I help today?",
    "Hello! You're through to customer care. What can I do for you?",
    "Welcome, how can I help you today?",
)
AGENT_ACKS = (
    "Thanks for reaching out. I'm sorry about the trouble, let me take a look.",
    "I'm happy to help with that. Could you give me a few more details?",
    "Thanks for getting in touch. Can you confirm the details on the account?",
    "I understand, that's frustrating. Let me check what's going on.",
    "Sure, I can look into this for you.",
    "Thanks for your message. Bear with me while I pull up your account.",
)
# Occasionally the agent does name the request, as real agents do.
AGENT_INTENT_ACKS: dict[str, str] = {
    "billing_dispute": "I'll review the charges on your bill.",
    "refund_request": "I can help you with that refund.",
    "lost_card": "I'll block the card straight away.",
    "report_fraud": "I'm sorry, let's get those transactions investigated.",
    "delivery_delay": "I'm sorry your delivery is running late.",
    "order_status": "Let me check where your order is.",
    "password_reset": "I can send you a new reset link.",
    "account_locked": "Let me see why the account was locked.",
    "upgrade_plan": "Happy to help you upgrade.",
    "downgrade_plan": "I can move you to a smaller plan.",
    "technical_issue": "Sorry about that, let's troubleshoot it together.",
    "invoice_request": "I can send that invoice over.",
    "promo_code": "Let me check that code for you.",
    "close_account": "I can help you close the account.",
    "cancel_subscription": "I can cancel that for you.",
    "change_address": "I'll update the address for you.",
    "update_payment_method": "Let's update your payment details.",
    "damaged_item": "I'm so sorry it arrived damaged.",
    "wrong_item": "Apologies for sending the wrong item.",
    "return_item": "I can set up a return for you.",
    "change_email": "I can change the email on file.",
    "schedule_callback": "I'll book a callback for you.",
    "product_availability": "Let me check stock for you.",
    "loyalty_points": "Let me look at your points balance.",
}
AGENT_PROGRESS = (
    "Thanks, I've found it.",
    "Thank you, one moment while I check.",
    "Got it. I've updated that for you.",
    "Thanks for confirming. I've raised this with the team.",
    "I can see what happened on our side. Give me a second.",
)
AGENT_CLOSINGS = (
    "Is there anything else I can help you with today?",
    "You'll receive a confirmation email shortly. Have a great day!",
    "That's all sorted. Thanks for your patience!",
    "I've made a note on your account. Anything else?",
    "You should see an update within 3-5 working days.",
)
SYSTEM_JOINS = {
    "chat": ("Customer joined the chat", "Chat started from the mobile app"),
    "email": ("Ticket created from inbound email",),
    "voice": ("Call connected", "Caller verified"),
    "sms": ("Conversation started by SMS",),
}
SYSTEM_TRANSFERS = ("Transferred to {team} team", "Conversation assigned to the {team} queue")
# Everything not listed goes to billing.
TEAMS: dict[str, str] = {
    "lost_card": "card services",
    "report_fraud": "fraud",
    "technical_issue": "technical support",
    "schedule_callback": "customer care",
    **dict.fromkeys(
        ("password_reset", "account_locked", "close_account", "change_email"), "accounts"
    ),
    **dict.fromkeys(
        (
            "delivery_delay", "order_status", "return_item", "damaged_item", "wrong_item",
            "change_address", "product_availability",
        ),
        "orders",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class GeneratedDay:
    """What one day's drop holds; tests and the DAGs check ingest against it."""

    day: date
    files: list[Path]  # the .jsonl files written for that day
    records: int  # physical lines written (good + broken)
    broken: int  # lines that are deliberately broken
    pii: dict[str, list[str]]  # PII values seeded into that day's text, by kind


def generate(
    out_dir: Path,
    days: int,
    per_day: int,
    start: date | None = None,
    seed: int = 0,
    broken_share: float = 0.02,
) -> list[GeneratedDay]:
    """Write `days` daily drops of `per_day` lines each under `out_dir/YYYY-MM-DD/`.

    `start` defaults to `days` days ago, so the last day written is yesterday.
    """
    if days < 0 or per_day < 0:
        raise ValueError("days and per_day must be >= 0")
    if not 0.0 <= broken_share <= 1.0:
        raise ValueError("broken_share must be within [0, 1]")
    first = start if start is not None else date.today() - timedelta(days=days)
    out = Path(out_dir)
    with Progress("generate", days * per_day, "records") as progress:
        return [
            _write_day(out, first + timedelta(days=i), per_day, seed, broken_share, progress)
            for i in range(days)
        ]


# --- One day ----------------------------------------------------------------------------------


def _day_rng(seed: int, day: date) -> random.Random:
    """A private RNG per (seed, day): a day's bytes never depend on the rest of the call."""
    digest = hashlib.sha256(f"{seed}:{day.isoformat()}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _broken_count(per_day: int, share: float) -> int:
    if share <= 0 or per_day < 2:
        return 0
    n = round(per_day * share)
    if per_day >= 20:
        n = max(n, 1)
    return min(n, per_day - 1)  # line 0 stays good, so a duplicate always has an original


def _write_day(
    out: Path, day: date, per_day: int, seed: int, share: float, progress: Progress
) -> GeneratedDay:
    lines, broken, pii = _day_lines(day, per_day, seed, share, progress)
    files = _write_files(out / day.isoformat(), lines)
    return GeneratedDay(day=day, files=files, records=len(lines), broken=broken, pii=pii)


def _day_lines(
    day: date, per_day: int, seed: int, share: float, progress: Progress
) -> tuple[list[str], int, dict[str, list[str]]]:
    rng = _day_rng(seed, day)
    n_broken = _broken_count(per_day, share)
    positions = sorted(rng.sample(range(1, per_day), n_broken)) if n_broken else []
    # Rotate by day so that a few consecutive days cover every kind, even at 1 broken a day.
    kinds = {
        p: BROKEN_KINDS[(day.toordinal() + k) % len(BROKEN_KINDS)] for k, p in enumerate(positions)
    }
    midnight = datetime.combine(day, time(), tzinfo=UTC)
    seconds = sorted(rng.randrange(86_400) for _ in range(per_day))
    lines: list[str] = []
    good_ids: list[str] = []
    pii: dict[str, list[str]] = {kind: [] for kind in PII_KINDS}
    for i, offset in enumerate(seconds):
        cid = f"syn-{day:%Y%m%d}-{i:06d}"
        started = (midnight + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")
        record, seeded = _conversation(rng, cid, started)
        kind = kinds.get(i)
        line = _broken_line(kind, record, rng, good_ids) if kind else _dumps(record)
        if kind is None:
            good_ids.append(cid)
        _collect_pii(pii, seeded, line)
        lines.append(line)
        progress.advance()
    return lines, n_broken, pii


def _collect_pii(pii: dict[str, list[str]], seeded: list[tuple[str, str]], line: str) -> None:
    """Record only values that survived into the line (a truncated line may cut one off)."""
    for kind, value in seeded:
        if value in line and value not in pii[kind]:
            pii[kind].append(value)


def _dumps(record: dict[str, object]) -> str:
    return json.dumps(record, ensure_ascii=False)


def _write_files(day_dir: Path, lines: list[str]) -> list[Path]:
    day_dir.mkdir(parents=True, exist_ok=True)
    chunks = [lines[i : i + LINES_PER_FILE] for i in range(0, len(lines), LINES_PER_FILE)] or [[]]
    files = [day_dir / f"chats-{n:03d}.jsonl" for n in range(len(chunks))]
    for path, chunk in zip(files, chunks, strict=True):
        _write_atomic(path, "".join(line + "\n" for line in chunk))
    # A rerun with a smaller per_day must not leave an older, longer drop's tail behind.
    for stale in day_dir.glob("chats-*.jsonl"):
        if stale not in files:
            stale.unlink()
    return files


def _write_atomic(path: Path, text: str) -> None:
    """Readers (ingest sensors) never see a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8", newline="\n")
    os.replace(tmp, path)


# --- Broken lines -----------------------------------------------------------------------------


def _broken_line(kind: str, record: dict[str, Any], rng: random.Random, good_ids: list[str]) -> str:
    if kind == "malformed_json":
        line = _dumps(record)
        return line[: rng.randint(len(line) // 3, len(line) - 2)]  # any strict prefix is invalid
    if kind == "missing_field":
        del record[rng.choice(REQUIRED_FIELDS)]
    elif kind == "empty_text":
        for turn in record["turns"]:
            if turn["speaker"] == CUSTOMER:
                turn["text"] = rng.choice(("", " ", "   ", "\n", "\t "))
    elif kind == "unknown_intent":
        record["intent"] = rng.choice(UNKNOWN_INTENTS)
    elif kind == "duplicate_id":
        record["conversation_id"] = rng.choice(good_ids)  # same id, fresh content
    else:
        raise ValueError(f"unknown broken kind {kind!r}")
    return _dumps(record)


# --- One conversation -------------------------------------------------------------------------


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _conversation(
    rng: random.Random, cid: str, started: str
) -> tuple[dict[str, object], list[tuple[str, str]]]:
    """One transcript record (keys in contract order) and the PII seeded into it."""
    intent = _pick(rng, INTENT_WEIGHTS)
    channel = _pick(rng, CHANNEL_WEIGHTS)
    language = _pick(rng, LANGUAGE_WEIGHTS)
    values = _slots(rng, language)
    seeded = _seed_pii(rng, intent, language)
    pii = {kind: value for kind, value in seeded if kind != "name"}
    if seeded and seeded[-1][0] == "name":  # full name first, then the first name alone
        pii["name"], pii["first"] = (v for k, v in seeded if k == "name")
    roles = _roles(rng)
    clarity = _clarity(rng, intent, roles)
    n_customer = roles.count(CUSTOMER)
    customer, substantive = _customer_texts(rng, intent, values, pii, n_customer, clarity)
    agent = _AgentVoice(intent, pii.get("first"), clarity)
    turns = _fill_turns(rng, roles, customer, substantive, channel, agent)
    record: dict[str, object] = {
        "conversation_id": cid,
        "source": SOURCE,
        "started_at": started,
        "channel": channel,
        "language": language,
        "intent": intent,
        "turns": turns,
    }
    return record, seeded


def _clarity(rng: random.Random, intent: str, roles: list[str]) -> str:
    """How the customer opens: "clear", "vague" (small talk first) or "unclear" (family only)."""
    draw = rng.random()
    # Unclear only when an agent answers the customer, so the transcript still settles it.
    if draw < UNCLEAR_SHARE and intent in FAMILIES and AGENT in roles[roles.index(CUSTOMER) :]:
        return "unclear"
    if draw >= 1 - VAGUE_SHARE and roles.count(CUSTOMER) >= 2:
        return "vague"
    return "clear"


def _slots(rng: random.Random, language: str) -> dict[str, str]:
    currency = "£" if language == "en-GB" else rng.choice("$$$$£")
    low, high = sorted(rng.sample(range(len(PLANS)), 2))
    product, product2 = rng.sample(PRODUCTS, 2)
    return {
        "product": product,
        "product2": product2,
        "amount": f"{currency}{rng.randint(5, 400)}.{rng.choice(('00', '99', '49', '50'))}",
        "amount2": f"{currency}{rng.randint(5, 120)}",
        "when": rng.choice(WHEN),
        "date": rng.choice(DATES),
        "days": str(rng.randint(3, 21)),
        "merchant": rng.choice(MERCHANTS),
        "city": rng.choice(CITIES),
        "low_plan": PLANS[low],
        "high_plan": PLANS[high],
        "service": rng.choice(SERVICES),
        "code": rng.choice(CODES),
        "points": f"{rng.randint(2, 250) * 100:,}",
        "device": rng.choice(DEVICES),
        "error": rng.choice(ERRORS),
        "call_time": rng.choice(CALL_TIMES),
    }


_SLOT = re.compile(r"\{(\w+)\}")


def _fill(template: str, values: dict[str, str]) -> str:
    """Fill known slots, leave the rest as-is (PII slots are filled after typos)."""
    return _SLOT.sub(lambda m: values.get(m[1], m[0]), template)


def _roles(rng: random.Random) -> list[str]:
    """2-6 alternating turns, usually customer first, sometimes with system events."""
    n = rng.choices((2, 3, 4, 5, 6), weights=(20, 25, 30, 15, 10))[0]
    transfer = rng.random() < 0.08
    roles = [SYSTEM] if rng.random() < 0.12 else []
    speaker = AGENT if rng.random() < 0.08 else CUSTOMER
    while len(roles) < n or CUSTOMER not in roles:
        roles.append(speaker)
        if transfer and speaker == AGENT and CUSTOMER in roles:
            roles.append(SYSTEM)
            transfer = False
        speaker = CUSTOMER if speaker == AGENT else AGENT
    return roles[:6]


# --- PII --------------------------------------------------------------------------------------


def _seed_pii(rng: random.Random, intent: str, language: str) -> list[tuple[str, str]]:
    """This conversation's PII as (kind, value), in ~40% of conversations.

    A name comes last, as the full name then the first name the agent greets with.
    """
    if rng.random() >= PII_SHARE:
        return []
    kinds = {PII_FOR_INTENT[intent]} if rng.random() < 0.8 else set()
    if rng.random() < 0.25:
        kinds.add(rng.choice(("email", "phone", "card", "order_id")))
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    if rng.random() < 0.6 or not kinds:
        kinds.add("name")
    makers = {
        "name": lambda: f"{first} {last}",
        "email": lambda: _make_email(rng, first, last),
        "phone": lambda: _make_phone(rng, language),
        "card": lambda: _make_card(rng),
        "order_id": lambda: _make_order_id(rng),
    }
    seeded = [(kind, makers[kind]()) for kind in PII_KINDS if kind in kinds]
    if "name" in kinds:
        seeded.append(("name", first))
    return seeded


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z]", "", folded.lower())


def _make_email(rng: random.Random, first: str, last: str) -> str:
    local = rng.choice(
        (
            f"{_ascii(first)}.{_ascii(last)}",
            f"{_ascii(first)[0]}{_ascii(last)}",
            f"{_ascii(first)}{rng.randint(1, 99)}",
            f"{_ascii(last)}.{_ascii(first)}{rng.randint(70, 99)}",
        )
    )
    return f"{local}@{rng.choice(EMAIL_DOMAINS)}"


def _make_phone(rng: random.Random, language: str) -> str:
    """Numbers from the ranges reserved for fiction (US 555-01xx, Ofcom drama ranges)."""
    area = rng.choice(("415", "212", "312", "617", "206", "512", "303"))
    us, uk = f"{rng.randint(0, 99):02d}", f"{rng.randint(0, 999):03d}"
    us_formats = (
        f"+1 {area}-555-01{us}",
        f"({area}) 555 01{us}",
        f"({area}) 555-01{us}",
        f"{area}.555.01{us}",
        f"{area}-555-01{us}",
    )
    uk_formats = (
        f"07700 900{uk}",
        f"+44 7700 900{uk}",
        f"+44 20 7946 0{uk}",
        f"020 7946 0{uk}",
    )
    uk_share = 0.8 if language == "en-GB" else 0.3
    return rng.choice(uk_formats if rng.random() < uk_share else us_formats)


def _luhn_check_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)  # the check digit will sit right of body
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


def _make_card(rng: random.Random) -> str:
    """16 digits with a valid Luhn digit, sometimes grouped by 4 with spaces or dashes."""
    prefix = rng.choice(("4", "51", "52", "53", "54", "55"))
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(15 - len(prefix)))
    digits = body + _luhn_check_digit(body)
    sep = rng.choice(("", "", " ", " ", "-"))
    return sep.join(digits[i : i + 4] for i in range(0, 16, 4))


def _make_order_id(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return f"ORD-{rng.randrange(10**8):08d}"
    return "#" + "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(8))


# --- Customer text ----------------------------------------------------------------------------


def _customer_texts(
    rng: random.Random,
    intent: str,
    values: dict[str, str],
    pii: dict[str, str],
    n: int,
    clarity: str,
) -> tuple[list[str], int]:
    """The customer's `n` turns: opening, details and PII, then short follow-ups.

    Also returns how many leading turns say something substantive (the agent only wraps up
    after those).
    """
    unclear = clarity == "unclear"
    pool = FAMILY_OPENINGS[FAMILIES[intent]] if unclear else OPENINGS[intent]
    opening = _fill(rng.choice(pool), values)
    details = [_fill(rng.choice(PII_DETAILS[k]), values) for k in PII_DETAILS if k in pii]
    if unclear and n >= 2:
        details.insert(0, rng.choice(CONFIRMS))  # answers the agent's check
    elif not unclear and rng.random() < 0.5:
        details.insert(0, _fill(rng.choice(DETAILS[intent]), values))
    greeting = rng.choice(NAME_INTROS) if "name" in pii else rng.choice(GREETINGS)
    texts = [_greet(greeting, opening)]
    if clarity == "vague":
        texts = [_greet(greeting, rng.choice(VAGUE_OPENINGS)), opening]  # request comes second
    if len(texts) >= n:
        texts[-1] = " ".join([texts[-1], *details])  # no turn left: the last carries the rest
    elif details:
        texts.append(" ".join(details))
    substantive = len(texts)
    texts += [rng.choice(CUSTOMER_FOLLOWUPS) for _ in range(n - len(texts))]
    # Typos first, then PII: the seeded values must survive verbatim.
    typed = [_fill(_typo(t, rng) if rng.random() < TYPO_SHARE else t, pii) for t in texts]
    return typed, substantive


def _greet(greeting: str, text: str) -> str:
    """'Hi, ' + 'Where is...' reads 'Hi, where is...'; 'I' stays capital."""
    if greeting.endswith(", ") and not re.match(r"I\b", text):
        text = text[0].lower() + text[1:]
    return greeting + text


_TYPO_WORD = re.compile(r"[A-Za-z]{4,}")


def _typo(text: str, rng: random.Random) -> str:
    """A human slip: a swapped, dropped or doubled letter, lowercase, or missing punctuation.

    Only plain words are touched, so `{slot}` placeholders and seeded PII stay intact.
    """
    ops = []
    tokens = text.split(" ")
    words = [i for i, t in enumerate(tokens) if _TYPO_WORD.fullmatch(t.rstrip(",.!?"))]
    if words and rng.random() < 0.75:
        ops.append("word")
    if any(c.isupper() for c in text) and rng.random() < 0.35:
        ops.append("lower")
    if re.search(r"[,.!?']", text) and rng.random() < 0.35:
        ops.append("punct")
    if not ops:
        ops.append("word" if words else "lower" if text != text.lower() else "punct")
    if "word" in ops:
        i = rng.choice(words)
        tokens[i] = _misspell(tokens[i], rng)
        text = " ".join(tokens)
    if "lower" in ops:
        text = text.lower()
    if "punct" in ops:
        text = re.sub(r"[.!?]+$", "", text.replace("'", "").replace(",", ""))
    return text


def _misspell(token: str, rng: random.Random) -> str:
    word = token.rstrip(",.!?")
    tail = token[len(word) :]
    i = rng.randrange(1, len(word) - 1)  # keep the first letter, as most slips do
    op = rng.choice(("swap", "drop", "double"))
    if op == "swap" and word[i].lower() != word[i + 1].lower():
        word = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    elif op == "double":
        word = word[: i + 1] + word[i:]
    else:
        word = word[:i] + word[i + 1 :]
    return word + tail


# --- Agent and system text --------------------------------------------------------------------


@dataclass(frozen=True)
class _AgentVoice:
    """What the agent knows when replying: the request, the customer's name, how it opened."""

    intent: str
    first_name: str | None
    clarity: str  # see _clarity


def _fill_turns(
    rng: random.Random,
    roles: list[str],
    customer: list[str],
    substantive: int,
    channel: str,
    agent: _AgentVoice,
) -> list[dict[str, str]]:
    turns: list[dict[str, str]] = []
    said = 0  # customer turns so far
    stage = "greet"  # agent: greet before the customer speaks, ack once, then progress/close
    for role in roles:
        if role == CUSTOMER:
            text = customer[said]
            said += 1
            stage = "ack" if stage == "greet" else stage
        elif role == SYSTEM:
            text = _system_text(rng, bool(turns), agent.intent, channel)
        else:
            text = _agent_text(rng, stage, said >= substantive, agent)
            stage = "later" if stage == "ack" else stage
        turns.append({"speaker": role, "text": text})
    return turns


def _agent_text(rng: random.Random, stage: str, wrap_up: bool, agent: _AgentVoice) -> str:
    if stage == "greet":
        return rng.choice(AGENT_GREETINGS)
    if stage == "later":
        return rng.choice(AGENT_CLOSINGS if wrap_up else AGENT_PROGRESS)
    if agent.clarity == "unclear":
        ack = rng.choice(AGENT_CHECK_FORMS).format(AGENT_CHECKS[agent.intent])
    else:
        ack = rng.choice(AGENT_ACKS)
        if agent.clarity == "clear" and rng.random() < 0.3:  # it can't name what it hasn't heard
            ack = f"{AGENT_INTENT_ACKS[agent.intent]} {ack}"
    if agent.first_name and rng.random() < 0.8:
        ack = f"Hi {agent.first_name}! {ack}"
    return ack


def _system_text(rng: random.Random, mid_conversation: bool, intent: str, channel: str) -> str:
    if not mid_conversation:
        return rng.choice(SYSTEM_JOINS[channel])
    team = TEAMS.get(intent, "billing")
    return rng.choice(SYSTEM_TRANSFERS).format(team=team)
