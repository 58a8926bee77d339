"""The content guard: every kind of near-miss is declined (with its reason), paraphrases are not.

No embedding model here: the guard alone decides these pairs; the real models are exercised in
test_cache_semantic.py and test_cache_learning.py. The pairs are not from the held-out set that
benchmarks/cache.py measures.
"""

from __future__ import annotations

import json

import pytest

from thrifty.gateway.cache.guard import Signature, disagreement


def why(a: str, b: str) -> str | None:
    return disagreement(Signature.of(a), Signature.of(b))


NEAR_MISSES = {
    "numbers and units": [
        ("Reserve a table for 3 people", "Reserve a table for 5 people", "number"),
        ("Ship a 2 kg box to Berlin", "Ship a 2 lb box to Berlin", "number"),
        ("Can we split it two ways?", "Can we split it three ways?", "number"),
        ("Is a 15% tip normal?", "Is a 20 percent tip normal?", "number"),
        ("订三个人的包间", "订八个人的包间", "number"),
        ("寄2公斤的东西多少钱？", "寄2斤的东西多少钱？", "number"),
        ("打七折是多少钱？", "打五折是多少钱？", "number"),
        ("满150减20还能用吗？", "满250减20还能用吗？", "number"),
    ],
    "products, models and codes": [
        ("Does the Pixel 6 support eSIM?", "Does the Pixel 9 support eSIM?", "number"),
        ("What does error F05 mean?", "What does error F07 mean?", "code"),
        ("Is the Tesla Model S fast?", "Is the Tesla Model X fast?", "code"),
        ("Where is order B7731?", "Where is order B7713?", "code"),
        ("How do I cancel Hulu?", "How do I cancel Disney?", "name"),
        ("小米12怎么录屏？", "小米11怎么录屏？", "number"),
        ("洗衣机显示E21怎么办？", "洗衣机显示E12怎么办？", "code"),
        ("淘宝怎么开发票？", "拼多多怎么开发票？", "swap"),
    ],
    "dates and places": [
        ("Is the bank open on Saturday?", "Is the bank open on Sunday?", "name"),
        ("Weather in Rome tomorrow", "Weather in Milan tomorrow", "name"),
        ("Trains from Lyon to Paris", "Trains from Paris to Lyon", "place"),
        ("Can you deliver this afternoon?", "Can you deliver this evening?", "time"),
        ("明天杭州会下雪吗？", "明天南京会下雪吗？", "swap"),
        ("今天下午能上门吗？", "明天下午能上门吗？", "time"),
        ("广州到长沙的高铁票多少钱？", "长沙到广州的高铁票多少钱？", "place"),
        ("春节期间发货吗？", "元旦期间发货吗？", "time"),
    ],
    "negation and opposite actions": [
        ("How do I enable 2FA?", "How do I disable 2FA?", "polarity"),
        ("How do I turn on location sharing?", "How do I turn off location sharing?", "polarity"),
        ("How do I mute the group chat?", "How do I unmute the group chat?", "polarity"),
        ("My parcel arrived, can I return it?", "My parcel never arrived, can I return it?", None),
        ("怎么开启指纹支付？", "怎么关闭指纹支付？", "polarity"),
        ("怎么申请退款？", "怎么申请付款？", "polarity"),
        ("怎么绑定信用卡？", "怎么解绑信用卡？", "polarity"),
        ("我付了钱，怎么取消订单？", "我没付钱，怎么取消订单？", "negation"),
    ],
    "key noun phrases": [
        ("节假日客服上班吗？", "周末客服上班吗？", "time"),
        ("这款平板的保修期是多久？", "这款手机的保修期是多久？", "swap"),
        ("支付宝能退款吗？", "微信支付能退款吗？", "swap"),
        ("Write a haiku about spring flowers", "Write a haiku about autumn leaves", "time"),
        ("How do I clean a wool sweater?", "How do I clean a silk sweater?", "swap"),
        ("What are the symptoms of measles?", "What are the symptoms of mumps?", "swap"),
        ("How do I remove a stain?", "How do I remove a grease stain?", "added"),
        ("红茶怎么泡？", "普洱怎么泡？", "swap"),
    ],
}


@pytest.mark.parametrize(
    ("a", "b", "reason"),
    [case for cases in NEAR_MISSES.values() for case in cases],
    ids=[f"{kind}-{i}" for kind, cases in NEAR_MISSES.items() for i in range(len(cases))],
)
def test_each_near_miss_kind_is_declined(a: str, b: str, reason: str | None) -> None:
    found = why(a, b)
    assert found is not None, f"{a!r} / {b!r} passed the guard"
    if reason is not None:
        assert found == reason
    assert why(b, a) is not None  # in either direction


PARAPHRASES = [
    ("How do I turn off notifications?", "How can I disable notifications?"),
    ("How do I turn on dark mode?", "How can I enable dark mode?"),
    ("What is the capital of France?", "Which city is France's capital?"),
    ("Who invented the telephone?", "Who was the inventor of the telephone?"),
    ("Is a table for 4 free tonight?", "Is there a table for four people free tonight?"),
    ("Is a 10% tip enough?", "Would a tip of 10 percent be enough?"),
    ("Flights from Paris to Nice", "Which flights go from Paris to Nice?"),
    ("Is the store open on Sundays?", "Is the store open on Sunday?"),
    ("怎么关闭消息通知？", "消息提醒怎么关掉？"),
    ("怎么退货？", "退货的流程是什么？"),
    ("法国的首都是哪里？", "法国首都是哪个城市？"),
    ("订两个人的位子", "帮我订两人的位子"),
    ("周日营业吗？", "星期天营业吗？"),
    ("iPhone 15怎么截屏？", "iPhone 15如何截图？"),
]


@pytest.mark.parametrize(("a", "b"), PARAPHRASES)
def test_paraphrases_pass_the_guard(a: str, b: str) -> None:
    assert why(a, b) is None
    assert why(b, a) is None


def test_other_scripts_and_full_width_digits() -> None:
    assert why("What is machine learning?", "什么是机器学习？") == "script"
    assert why("Refund for order ５５２１?", "Refund for order 5521?") is None


def test_signature_round_trips_through_json() -> None:
    for text in ("Order 42: 退款？", "How do I turn off 2FA on my iPhone 15 before 7pm?"):
        sig = Signature.of(text)
        assert Signature.from_list(json.loads(json.dumps(sig.to_list()))) == sig
