"""Write the customer-service example data (examples/customer_service/data/*.jsonl).

Templated support turns for a bank, a phone company and a shop, generated deterministically
(seeded): each user turn has an intent (sentence classification), BIO slot tags on its words
(token classification) and an agent reply (generation) that repeats the slot values. Run:

    python scripts/make_customer_service_data.py [--out examples/customer_service/data]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

SLOT_VALUES = {
    "card": ["visa", "mastercard", "debit", "credit", "gold", "business"],
    "amount": ["20", "50", "75", "100", "250", "500", "1000", "40", "300"],
    "person": ["anna", "james", "maria", "tom", "lucy", "omar", "sara", "peter"],
    "plan": ["basic", "unlimited", "family", "premium", "travel", "student"],
    "city": ["london", "paris", "berlin", "madrid", "rome", "dublin", "lisbon"],
    "product": ["laptop", "phone", "jacket", "camera", "lamp", "headphones", "chair"],
    "order": ["a17", "b42", "c93", "d28", "e65", "f11", "g74"],
}

# intent -> (user templates, reply template); {slot} marks a slot value in the user turn.
INTENTS = {
    "block_card": (["please block my {card} card", "i lost my {card} card", "my {card} card was stolen",
                    "can you freeze my {card} card"],
                   "your {card} card is blocked"),
    "transfer_money": (["send {amount} euros to {person}", "transfer {amount} euros to {person} please",
                        "i want to pay {person} {amount} euros"],
                       "sent {amount} euros to {person}"),
    "check_balance": (["what is my balance", "how much money do i have", "show my account balance"],
                      "your balance is in the app"),
    "change_plan": (["switch me to the {plan} plan", "i want the {plan} plan",
                     "can i move to the {plan} plan"],
                    "you are now on the {plan} plan"),
    "report_outage": (["there is no signal in {city}", "my internet is down in {city}",
                       "the network is not working in {city}"],
                      "we are fixing the network in {city}"),
    "track_order": (["where is my order {order}", "track order {order}", "has order {order} shipped"],
                    "order {order} arrives in two days"),
    "return_item": (["i want to return the {product}", "how do i send back the {product}",
                     "the {product} is broken , i want a refund"],
                    "we sent a return label for the {product}"),
}


def make_turn(rng: random.Random) -> dict:
    intent = rng.choice(sorted(INTENTS))
    templates, reply = INTENTS[intent]
    values = {slot: rng.choice(choices) for slot, choices in SLOT_VALUES.items()}
    words, tags = [], []
    for piece in rng.choice(templates).split():
        if piece.startswith("{"):
            slot = piece.strip("{}")
            words.append(values[slot])
            tags.append(f"B-{slot}")
        else:
            words.append(piece)
            tags.append("O")
    return {"text": " ".join(words), "tokens": words, "intent": intent, "slots": tags,
            "reply": reply.format(**values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parents[1] / "examples" / "customer_service" / "data")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    for split, n in (("train", 700), ("dev", 70), ("test", 70)):
        rows = [make_turn(rng) for _ in range(n)]
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        (args.out / f"{split}.jsonl").write_text(text, encoding="utf-8")
        print(f"{args.out / f'{split}.jsonl'}: {n} turns")


if __name__ == "__main__":
    main()
