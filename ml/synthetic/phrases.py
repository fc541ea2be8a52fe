"""The phrase tables of the synthetic feed: slot fillers, customer openings and details, agent
and system turns, by intent where they depend on it.

Only text lives here; ml.synthetic.generate decides which is drawn and how often. The tables
keyed by intent cover the whole default taxonomy (ml.taxonomy.INTENTS; tests/synthetic checks).
"""

from __future__ import annotations

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
