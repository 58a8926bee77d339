"""A customer-service intent data set, half Chinese and half English, generated from templates.

The acceptance task of `thrifty distill` / `finetune`: classify a customer's message into one of
ten labels, answering with the label alone. Every (label, language) pair has its own templates
with slots (order numbers, products, payment methods, places, politeness around them); the last
`_TEST_TEMPLATES` templates of each pair are kept for the test split only, so no test phrasing
is seen in training. Deterministic for a seed.

    python -m thrifty.train.intent examples/intent      # train.jsonl, test.jsonl, suite
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LABELS = (
    "order_status", "refund", "cancel_order", "shipping_address", "payment_issue",
    "product_info", "complaint", "account_login", "invoice", "human_agent",
)  # fmt: skip

SYSTEM = (
    "You are the intent classifier of an online shop's customer service. Classify the "
    "customer's message into exactly one of these labels: " + ", ".join(LABELS) + ". "
    "Answer with the label only, nothing else."
)

_TEST_TEMPLATES = 3  # per (label, language): held out of training

_EN: dict[str, list[str]] = {
    "order_status": [
        "Where is my order {order}?",
        "Can you tell me the status of order {order}?",
        "My {product} hasn't arrived yet, when will it come?",
        "I ordered a {product} {days} days ago and still nothing. Where is it?",
        "Has my package been shipped?",
        "Tracking for {order} hasn't updated in {days} days, what's going on?",
        "When will order {order} be delivered?",
        "Is my {product} on the way?",
        "How long until my order arrives?",
        "Could you check where order {order} is right now?",
        "The app says my {product} is processing, has it left the warehouse?",
        "I need an update on my delivery of the {product}.",
    ],
    "refund": [
        "I want a refund for my {product}.",
        "How do I get my money back for order {order}?",
        "I returned the {product} {days} days ago, where is my refund?",
        "Please refund order {order}, the item was broken.",
        "Can I return this {product} and get a refund?",
        "The refund for {order} still hasn't reached my {pay}.",
        "I'd like to return the {product} for a full refund.",
        "How long does a refund take to show up on my {pay}?",
        "I want my money back, the {product} doesn't work.",
        "Is order {order} eligible for a refund?",
        "Please give me a refund, I received the wrong {product}.",
        "What's the status of my refund for the {product}?",
    ],
    "cancel_order": [
        "Please cancel my order {order}.",
        "I want to cancel the {product} I just ordered.",
        "How do I cancel an order?",
        "I changed my mind, cancel order {order} please.",
        "Can I still cancel my order before it ships?",
        "I ordered the {product} by mistake, please cancel it.",
        "Stop order {order}, I don't need it anymore.",
        "Is it too late to cancel {order}?",
        "Cancel the purchase I made {days} days ago.",
        "I need to cancel my {product} order right away.",
        "Please don't ship order {order}, I want to cancel it.",
        "How can I call off the order for the {product}?",
    ],
    "shipping_address": [
        "I need to change the delivery address for order {order}.",
        "Can I update my shipping address to {city}?",
        "I moved to {city}, please send the {product} there instead.",
        "Wrong address on order {order}, how do I fix it?",
        "Please ship my {product} to my office in {city}.",
        "How do I edit the address on an order that hasn't shipped?",
        "Change the recipient address of {order} to {city}.",
        "I typed the wrong street name for my {product} delivery.",
        "Can you deliver order {order} to a different address?",
        "I'd like to change where my package is delivered.",
        "Please update the shipping address on {order}, I'm now in {city}.",
        "The house number on my delivery address is wrong.",
    ],
    "payment_issue": [
        "My payment with {pay} failed.",
        "I was charged twice for order {order}.",
        "Why was my {pay} declined at checkout?",
        "The payment went through but the order {order} shows unpaid.",
        "I can't pay with {pay}, it keeps showing an error.",
        "I got charged for the {product} but never placed the order.",
        "Checkout fails every time I try {pay}.",
        "Money left my account but the order wasn't created.",
        "There's an extra charge on my {pay} from your shop.",
        "Payment keeps timing out when I buy the {product}.",
        "Why did my {pay} get billed two times?",
        "The checkout page won't accept my {pay}.",
    ],
    "product_info": [
        "Is the {product} waterproof?",
        "What size should I get for the {product}?",
        "Does the {product} come with a warranty?",
        "Is the {product} in stock?",
        "What colors does the {product} come in?",
        "How long does the battery of the {product} last?",
        "What's the difference between the two {product} models?",
        "Is the {product} compatible with my phone?",
        "What material is the {product} made of?",
        "Can you tell me the specs of the {product}?",
        "Does the {product} work outside of China?",
        "How heavy is the {product}?",
    ],
    "complaint": [
        "Your service is terrible, I've waited {days} days for an answer.",
        "The delivery guy was really rude to me.",
        "I'm very unhappy with the quality of the {product}.",
        "This is the worst shopping experience I've ever had.",
        "I want to file a complaint about your courier.",
        "The {product} smells bad and looks used, this is unacceptable.",
        "Nobody answers my messages, I'm extremely disappointed.",
        "Your staff hung up on me twice today.",
        "I'm fed up with the constant delays from your shop.",
        "The {product} broke after one day, what kind of quality is this?",
        "I'm disgusted by how your team treated me.",
        "Seriously poor service, I want to complain.",
    ],
    "account_login": [
        "I can't log in to my account.",
        "I forgot my password, how do I reset it?",
        "The verification code never arrives when I sign in.",
        "My account got locked after too many attempts.",
        "Login keeps failing with my phone number.",
        "How do I change the password of my account?",
        "It says my account doesn't exist but I've ordered before.",
        "I can't sign in with my email anymore.",
        "The app logs me out every few minutes.",
        "Someone else may have accessed my account.",
        "I never get the SMS code to log in.",
        "Help, I'm locked out of my account.",
    ],
    "invoice": [
        "I need an invoice for order {order}.",
        "Can you send me a VAT invoice for the {product}?",
        "How do I get a receipt for my purchase?",
        "The company name on my invoice is wrong.",
        "Please issue an invoice with my company's tax ID for {order}.",
        "Where can I download the invoice for order {order}?",
        "I need a receipt for expense reporting.",
        "Can I get an electronic invoice for the {product}?",
        "My invoice for {order} never arrived by email.",
        "Please reissue the invoice with the correct amount.",
        "I need a fapiao for my order.",
        "How do I request a business invoice?",
    ],
    "human_agent": [
        "I want to talk to a real person.",
        "Transfer me to a human agent please.",
        "Can I speak with customer service staff?",
        "Stop the bot, get me a human.",
        "Is there a live agent I can chat with?",
        "Connect me to a representative.",
        "I need to speak to someone, not a robot.",
        "Please put me through to an operator.",
        "Let me talk to your manager.",
        "Get me a human, this chatbot isn't helping.",
        "Can a staff member call me back?",
        "I'd like to chat with a person from support.",
    ],
}

_ZH: dict[str, list[str]] = {
    "order_status": [
        "我的订单{order}到哪了？",
        "帮我查一下订单{order}的物流状态。",
        "我买的{product}怎么还没到？",
        "{days}天前下的单，{product}到现在还没收到。",
        "我的包裹发货了吗？",
        "订单{order}的物流{days}天没更新了，怎么回事？",
        "订单{order}什么时候能送到？",
        "我的{product}在路上了吗？",
        "请问我的快递大概多久能到？",
        "能帮我看看{order}现在到哪里了吗？",
        "显示{product}还在处理中，出库了没有？",
        "想问下我的{product}配送进度。",
    ],
    "refund": [
        "我要申请{product}的退款。",
        "订单{order}怎么退款？",
        "{product}已经退回{days}天了，钱什么时候退？",
        "请给订单{order}退款，东西是坏的。",
        "这个{product}可以退货退款吗？",
        "{order}的退款还没到我的{pay}。",
        "我想把{product}退了，全额退款。",
        "退款到{pay}一般要几天？",
        "{product}用不了，我要退钱。",
        "订单{order}能退款吗？",
        "发错了{product}，请给我退款。",
        "我的{product}退款进度怎么样了？",
    ],
    "cancel_order": [
        "请帮我取消订单{order}。",
        "刚买的{product}我不要了，取消订单。",
        "怎么取消订单？",
        "我改主意了，订单{order}取消吧。",
        "还没发货的话能取消吗？",
        "{product}买错了，帮我取消一下。",
        "订单{order}不要了，帮我撤销。",
        "{order}现在还能取消吗？",
        "{days}天前下的单帮我取消掉。",
        "马上帮我取消{product}这个订单。",
        "订单{order}先别发货，我要取消。",
        "{product}的订单怎么撤回？",
    ],
    "shipping_address": [
        "订单{order}的收货地址要改一下。",
        "能把收货地址改成{city}吗？",
        "我搬到{city}了，{product}请寄到新地址。",
        "订单{order}地址填错了，怎么改？",
        "{product}请送到我在{city}的公司。",
        "还没发货的订单怎么修改地址？",
        "把{order}的收件地址改成{city}。",
        "{product}的收货地址街道写错了。",
        "订单{order}能换个地址送吗？",
        "我想修改包裹的配送地址。",
        "麻烦更新一下{order}的地址，我现在在{city}。",
        "收货地址的门牌号写错了。",
    ],
    "payment_issue": [
        "用{pay}付款失败了。",
        "订单{order}被扣了两次钱。",
        "为什么{pay}支付一直被拒绝？",
        "钱已经付了，订单{order}还显示未付款。",
        "{pay}付不了，一直报错。",
        "没下单却扣了我{product}的钱。",
        "每次用{pay}结账都失败。",
        "钱扣了但是订单没生成。",
        "我的{pay}多了一笔你们店的扣款。",
        "买{product}付款的时候一直超时。",
        "为什么{pay}被扣了两遍？",
        "结算页面不接受我的{pay}。",
    ],
    "product_info": [
        "这款{product}防水吗？",
        "{product}应该选哪个尺码？",
        "{product}有保修吗？",
        "{product}还有货吗？",
        "{product}有哪些颜色？",
        "{product}的电池能用多久？",
        "两个型号的{product}有什么区别？",
        "{product}和我的手机兼容吗？",
        "{product}是什么材质的？",
        "能介绍一下{product}的参数吗？",
        "{product}在国外能用吗？",
        "{product}有多重？",
    ],
    "complaint": [
        "你们服务太差了，我等了{days}天都没人回复。",
        "快递员态度非常恶劣。",
        "{product}质量太差了，非常不满意。",
        "这是我最糟糕的一次购物体验。",
        "我要投诉你们的快递。",
        "{product}有异味还像用过的，太过分了。",
        "发消息一直没人理，太失望了。",
        "你们客服今天挂了我两次电话。",
        "你们店老是拖延，我受够了。",
        "{product}用一天就坏了，这什么质量？",
        "你们员工的态度让我很气愤。",
        "服务真的太差了，我要投诉。",
    ],
    "account_login": [
        "我登录不了账号。",
        "忘记密码了，怎么重置？",
        "登录的时候一直收不到验证码。",
        "尝试次数太多，账号被锁了。",
        "用手机号登录总是失败。",
        "账号密码怎么修改？",
        "提示账号不存在，可我以前买过东西。",
        "邮箱登录不上去了。",
        "App每隔几分钟就把我踢下线。",
        "我的账号好像被别人登录了。",
        "登录的短信验证码一直不来。",
        "救命，我的账号进不去了。",
    ],
    "invoice": [
        "订单{order}需要开发票。",
        "{product}能开增值税发票吗？",
        "怎么获取购物小票？",
        "发票上的公司名称开错了。",
        "请给{order}开带公司税号的发票。",
        "订单{order}的发票在哪里下载？",
        "报销需要一张收据。",
        "{product}可以开电子发票吗？",
        "{order}的发票一直没发到邮箱。",
        "发票金额不对，请重新开一张。",
        "我的订单要开发票。",
        "企业发票怎么申请？",
    ],
    "human_agent": [
        "我要找人工客服。",
        "请帮我转人工。",
        "能和客服人员直接聊吗？",
        "别用机器人了，给我接人工。",
        "有在线的真人客服吗？",
        "帮我联系一下客服代表。",
        "我要跟真人说话，不要机器人。",
        "请帮我转接人工服务。",
        "让你们经理来跟我说。",
        "机器人解决不了，转人工。",
        "能让工作人员给我回个电话吗？",
        "我想跟售后的人工聊一下。",
    ],
}

_SLOTS_EN: dict[str, Sequence[str]] = {
    "product": (
        "headphones", "phone case", "rice cooker", "running shoes", "backpack", "smart watch",
        "air fryer", "desk lamp", "power bank", "jacket", "coffee maker", "keyboard",
    ),
    "pay": ("credit card", "PayPal", "Alipay", "WeChat Pay", "debit card", "Apple Pay"),
    "city": ("Shanghai", "Beijing", "Shenzhen", "Hangzhou", "Chengdu", "London", "Singapore"),
}  # fmt: skip
_SLOTS_ZH: dict[str, Sequence[str]] = {
    "product": (
        "耳机", "手机壳", "电饭煲", "跑鞋", "双肩包", "智能手表", "空气炸锅", "台灯", "充电宝",
        "羽绒服", "咖啡机", "键盘",
    ),
    "pay": ("信用卡", "支付宝", "微信支付", "银行卡", "花呗", "云闪付"),
    "city": ("上海", "北京", "深圳", "杭州", "成都", "广州", "南京"),
}  # fmt: skip
_AROUND = {
    "en": (
        ("", ""), ("Hi, ", ""), ("Hello! ", ""), ("", " Thanks."), ("Excuse me, ", ""),
        ("", " Please help."), ("Hey, ", " Thank you!"), ("", " ASAP please."),
    ),
    "zh": (
        ("", ""), ("你好，", ""), ("您好，", ""), ("", "谢谢。"), ("在吗？", ""),
        ("", "麻烦了。"), ("客服你好，", "谢谢！"), ("", "急！"),
    ),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Row:
    text: str
    label: str
    lang: str  # en | zh
    template: str

    def messages(self) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": self.text},
            {"role": "assistant", "content": self.label},
        ]


def _order(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return f"#{rng.choice('ABCDEFGH')}{rng.randrange(10000, 99999)}"
    return f"{rng.randrange(2024, 2026)}{rng.randrange(1, 13):02d}{rng.randrange(10**7, 10**8)}"


def _fill(template: str, lang: str, rng: random.Random) -> str:
    slots = _SLOTS_EN if lang == "en" else _SLOTS_ZH
    values = {name: rng.choice(options) for name, options in slots.items()}
    values["order"] = _order(rng)
    values["days"] = str(rng.randrange(2, 15))
    text = template.format(**values)
    if template.startswith("{") and lang == "en":  # an English sentence starting with a slot
        text = text[0].upper() + text[1:]
    before, after = rng.choice(_AROUND[lang])
    if before and lang == "en" and text[:1].isupper() and not text.startswith(("I ", "I'")):
        text = text[0].lower() + text[1:]
    return before + text + after


def _generate(
    templates: dict[str, dict[str, list[str]]], per_pair: int, rng: random.Random, seen: set[str]
) -> list[Row]:
    rows = []
    for label in LABELS:
        for lang in ("en", "zh"):
            pool = templates[lang][label]
            made, tries = 0, 0
            while made < per_pair:
                tries += 1
                if tries > per_pair * 200:
                    raise RuntimeError(f"too few distinct phrasings for {label}/{lang}")
                template = pool[made % len(pool)] if tries <= len(pool) else rng.choice(pool)
                text = _fill(template, lang, rng)
                if text in seen:
                    continue
                seen.add(text)
                rows.append(Row(text, label, lang, template))
                made += 1
    rng.shuffle(rows)
    return rows


def build(seed: int = 0, train_per_pair: int = 30, test_per_pair: int = 8) -> tuple[list[Row], ...]:
    """(train, test): `train_per_pair` / `test_per_pair` rows per label and language."""
    rng = random.Random(seed)
    train_t = {"en": {k: v[:-_TEST_TEMPLATES] for k, v in _EN.items()}, "zh": {}}
    test_t = {"en": {k: v[-_TEST_TEMPLATES:] for k, v in _EN.items()}, "zh": {}}
    train_t["zh"] = {k: v[:-_TEST_TEMPLATES] for k, v in _ZH.items()}
    test_t["zh"] = {k: v[-_TEST_TEMPLATES:] for k, v in _ZH.items()}
    seen: set[str] = set()
    train = _generate(train_t, train_per_pair, rng, seen)
    test = _generate(test_t, test_per_pair, rng, seen)
    return train, test


def suite_rows(test: Sequence[Row]) -> list[dict[str, Any]]:
    """A `thrifty eval` suite: the test rows, scored by exact match against the label."""
    header = {"suite": {"name": "intent", "scorer": "exact", "system": SYSTEM, "max_tokens": 8}}
    items = [
        {"id": f"intent-{i:03d}-{row.lang}", "prompt": row.text, "expected": row.label}
        for i, row in enumerate(test, 1)
    ]
    return [header, *items]


def write(folder: Path, seed: int = 0) -> dict[str, int]:
    """Write train.jsonl, test.jsonl and intent.suite.jsonl into `folder`."""
    train, test = build(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "train.jsonl": [{"messages": r.messages()} for r in train],
        "test.jsonl": [{"messages": r.messages()} for r in test],
        "intent.suite.jsonl": suite_rows(test),
    }
    for name, rows in files.items():
        with open(folder / name, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return {name: len(rows) for name, rows in files.items()}


if __name__ == "__main__":  # pragma: no cover
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "examples/intent")
    for name, n in write(out).items():
        print(f"{out / name}: {n} rows")
