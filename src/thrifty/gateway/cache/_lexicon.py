"""Word lists of the content guard (`guard.py`): function words, numbers, units, polarity.

Polarity: each word of an opposite pair maps to one axis with a sign ("on+" / "on-"), so that
synonyms on one side ("turn off", "disable", 关闭, 关掉) become one token and opposites
(enable/disable, 开启/关闭, 退款/付款) two tokens on the same axis.
"""

from __future__ import annotations


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


EN_STOP = _words(
    """
a an the is are was were be been being am do does did done i me my mine you your yours we us our
it its this that these those what which who whom whose how why when where can could would should
will shall may might must please tell explain show give let there here of in on at to for from
by with about as and or but if so than then into onto up out any some also just very really don
want like need get got way possible way's there's what's how's it's i'm i'd i'll you're let's is
it whats hows im id ill youre lets anything something someone anyone am allowed make makes made
kind type thing stuff able process step steps method ways tips exactly actually usually normally
typically generally currently still ever much many often one ones via describe go goes going
have has
"""
)

EN_NUMBERS = {
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
    "twenty": "20",
    "thirty": "30",
    "forty": "40",
    "fifty": "50",
    "hundred": "100",
    "thousand": "1000",
    "million": "1000000",
    "dozen": "12",
    "half": "0.5",
    "twice": "2",
    "single": "1",
    "double": "2",
    "triple": "3",
}

EN_UNITS = {
    **dict.fromkeys(["kg", "kgs", "kilo", "kilos", "kilogram", "kilogramme"], "kg"),
    **dict.fromkeys(["lb", "lbs", "pound"], "lb"),
    **dict.fromkeys(["g", "gram", "gramme"], "g"),
    **dict.fromkeys(["mg", "milligram"], "mg"),
    **dict.fromkeys(["km", "kilometer", "kilometre"], "km"),
    **dict.fromkeys(["mi", "mile"], "mile"),
    **dict.fromkeys(["m", "meter", "metre"], "m"),
    **dict.fromkeys(["cm", "centimeter", "centimetre"], "cm"),
    **dict.fromkeys(["ml", "milliliter", "millilitre"], "ml"),
    **dict.fromkeys(["l", "liter", "litre"], "l"),
    **dict.fromkeys(["gallon", "gal"], "gallon"),
    **dict.fromkeys(["mph"], "mph"),
    **dict.fromkeys(["kmh", "kph"], "kmh"),
    **dict.fromkeys(["gb", "gig", "gigabyte"], "gb"),
    **dict.fromkeys(["tb", "terabyte"], "tb"),
    **dict.fromkeys(["mb", "megabyte"], "mb"),
    **dict.fromkeys(["mbps"], "mbps"),
    **dict.fromkeys(["w", "watt"], "w"),
    **dict.fromkeys(["percent", "pct"], "%"),
    **dict.fromkeys(["usd", "dollar", "buck"], "usd"),
    **dict.fromkeys(["eur", "euro"], "eur"),
    **dict.fromkeys(["gbp"], "gbp"),
    **dict.fromkeys(["cny", "rmb", "yuan"], "cny"),
    **dict.fromkeys(["min", "minute", "mins"], "minute"),
    **dict.fromkeys(["s", "sec", "second", "secs"], "second"),
    **dict.fromkeys(["h", "hr", "hrs", "hour"], "hour"),
    **dict.fromkeys(["day", "daily"], "day"),
    **dict.fromkeys(["week", "weekly"], "week"),
    **dict.fromkeys(["month", "monthly"], "month"),
    **dict.fromkeys(["year", "yr", "annual", "yearly"], "year"),
    **dict.fromkeys(["night"], "night"),
    **dict.fromkeys(["people", "person", "guest", "adult"], "person"),
    **dict.fromkeys(["c", "celsius"], "c"),
    **dict.fromkeys(["f", "fahrenheit"], "f"),
    **dict.fromkeys(["degree"], "degree"),
    **dict.fromkeys(["am"], "am"),
    **dict.fromkeys(["pm"], "pm"),
}

EN_TIMES = _words(
    """
today tomorrow yesterday tonight morning afternoon evening night noon midnight weekend weekday
monday tuesday wednesday thursday friday saturday sunday january february march april june july
august september october november december spring summer autumn fall winter christmas easter
thanksgiving halloween next previous
"""
)

# Bigrams that carry one polarity (the words of `_finish`, plurals folded).
EN_PHRASES = {
    "turn on": "on+",
    "turn off": "on-",
    "switch on": "on+",
    "switch off": "on-",
    "log in": "in+",
    "log out": "in-",
    "sign in": "in+",
    "sign out": "in-",
    "check in": "check+",
    "check out": "check-",
    "zoom in": "zoom+",
    "zoom out": "zoom-",
    "opt in": "sub+",
    "opt out": "sub-",
    "sign up": "sub+",
    "money back": "refund",
}

EN_POLARITY = {
    **dict.fromkeys(["enable", "activate"], "on+"),
    **dict.fromkeys(["disable", "deactivate"], "on-"),
    **dict.fromkeys(["display", "unhide", "expand", "reveal"], "vis+"),
    **dict.fromkeys(["hide", "collapse"], "vis-"),
    **dict.fromkeys(["subscribe", "follow", "signup"], "sub+"),
    **dict.fromkeys(["unsubscribe", "unfollow"], "sub-"),
    **dict.fromkeys(["mute"], "mute+"),
    **dict.fromkeys(["unmute"], "mute-"),
    **dict.fromkeys(["pin"], "pin+"),
    **dict.fromkeys(["unpin"], "pin-"),
    **dict.fromkeys(["lock"], "lock+"),
    **dict.fromkeys(["unlock"], "lock-"),
    **dict.fromkeys(["allow", "permit", "unblock"], "allow+"),
    **dict.fromkeys(["block", "disallow", "forbid"], "allow-"),
    **dict.fromkeys(["archive"], "archive+"),
    **dict.fromkeys(["unarchive"], "archive-"),
    **dict.fromkeys(["install"], "install+"),
    **dict.fromkeys(["uninstall"], "install-"),
    **dict.fromkeys(["connect", "pair"], "connect+"),
    **dict.fromkeys(["disconnect", "unpair"], "connect-"),
    **dict.fromkeys(["zip", "compress"], "zip+"),
    **dict.fromkeys(["unzip", "decompress", "extract"], "zip-"),
    **dict.fromkeys(["encrypt"], "crypt+"),
    **dict.fromkeys(["decrypt"], "crypt-"),
    **dict.fromkeys(["import"], "port+"),
    **dict.fromkeys(["export"], "port-"),
    **dict.fromkeys(["login", "signin", "join", "enter"], "in+"),
    **dict.fromkeys(["logout", "signout", "quit", "exit"], "in-"),
    **dict.fromkeys(["upgrade"], "grade+"),
    **dict.fromkeys(["downgrade"], "grade-"),
    **dict.fromkeys(
        ["increase", "raise", "enlarge", "bigger", "larger", "higher", "high", "more", "boost"],
        "more+",
    ),
    **dict.fromkeys(
        ["decrease", "lower", "reduce", "smaller", "low", "less", "fewer", "shrink"], "more-"
    ),
    **dict.fromkeys(["include"], "include+"),
    **dict.fromkeys(["exclude"], "include-"),
    **dict.fromkeys(["start", "begin"], "start+"),
    **dict.fromkeys(["end", "stop", "finish"], "start-"),
    **dict.fromkeys(["resume", "unpause"], "pause-"),
    **dict.fromkeys(["pause"], "pause+"),
    **dict.fromkeys(["accept", "approve"], "accept+"),
    **dict.fromkeys(["decline", "reject", "refuse", "deny"], "accept-"),
    **dict.fromkeys(["deposit"], "money+"),
    **dict.fromkeys(["withdraw", "withdrawal"], "money-"),
    **dict.fromkeys(["add", "create", "insert"], "exist+"),
    **dict.fromkeys(["remove", "delete", "erase"], "exist-"),
    **dict.fromkeys(["fast", "quick", "quickly", "faster"], "speed+"),
    **dict.fromkeys(["slow", "slowly", "slower"], "speed-"),
    **dict.fromkeys(["advantage", "benefit", "upside"], "merit+"),
    **dict.fromkeys(["disadvantage", "drawback", "downside"], "merit-"),
    **dict.fromkeys(["before", "earlier"], "order+"),
    **dict.fromkeys(["after", "later"], "order-"),
    **dict.fromkeys(["attach"], "attach+"),
    **dict.fromkeys(["detach"], "attach-"),
    **dict.fromkeys(["buy", "purchase"], "buy+"),
    **dict.fromkeys(["sell"], "buy-"),
    **dict.fromkeys(["pay", "payment", "charge"], "pay+"),
    **dict.fromkeys(["refund"], "pay-"),
    **dict.fromkeys(["freeze"], "freeze+"),
    **dict.fromkeys(["unfreeze"], "freeze-"),
    **dict.fromkeys(["upload"], "load+"),
    **dict.fromkeys(["download"], "load-"),
    **dict.fromkeys(["merge", "combine"], "merge+"),
    **dict.fromkeys(["split"], "merge-"),
    **dict.fromkeys(["hot", "warm", "heat"], "heat+"),
    **dict.fromkeys(["cold", "cool"], "heat-"),
    **dict.fromkeys(["safe"], "safe+"),
    **dict.fromkeys(["unsafe", "dangerous"], "safe-"),
}

EN_SYNONYMS = {
    "shipping": "delivery",
    "ship": "deliver",
    "shipped": "delivered",
    "colour": "color",
    "favourite": "favorite",
    "photo": "picture",
    "pic": "picture",
    "image": "picture",
    "cellphone": "phone",
    "mobile": "phone",
    "smartphone": "phone",
    "price": "cost",
    "fee": "cost",
    "couch": "sofa",
    "film": "movie",
    "television": "tv",
    "kid": "child",
    "children": "child",
    "automobile": "car",
    "shop": "store",
    "parcel": "package",
    "cancellation": "cancel",
    "reservation": "booking",
    "reserve": "book",
    "e-mail": "email",
    "mail": "email",
    "wireless": "wifi",
    "receipt": "receipt",
    "membership": "member",
    "rename": "change",
    "modify": "change",
    "update": "change",
    "edit": "change",
    "biggest": "largest",
    "capture": "screenshot",
}

# Chinese function words and characters: how a question is put, not what it asks.
ZH_STOP = _words(
    """
的 了 吗 呢 吧 啊 呀 么 嘛 是 在 有 和 与 及 或 就 都 也 还 又 很 请 请问 一下 我 你 您 他 她 它
我们 你们 他们 这 那 这个 那个 这些 那些 这里 那里 个 些 能 能够 可以 可 会 要 想 需要 应该 该
给 把 被 让 用 对 从 到 于 之 其 为 为什么 怎么 怎么样 怎样 如何 什么 哪里 哪儿 哪个 哪些 哪
多少 几 啥 怎么办 办 多久 多长 时间 时候 什么时候 以 而 并 但 但是 如果 所以 因为 得 地 再 才
已经 已 一般 大概 通常 比较 最 更 特别 真的 哦 嗯 我的 你们的 一些 有没有 是不是 能不能 可不可以
要不要 会不会 支持 允许 告诉 一 上 下 呀 来 做 弄 搞 操作 方法 办法 步骤 流程 怎么弄 怎么做 吗？
多 里 么 哪个城市 哪座城市 哪座 哪家 哪种 哪位 哪一个 介绍 解释 说明 讲 讲讲 说 说说 看起来 简单
就是 还是 或者 一个 那么 这么 然后 之后 以后 可能 是否 问 请教 帮 帮我 帮忙 麻烦 谢谢
"""
)

ZH_NEGATORS = "不没未无非勿"
# Words with a negating character that negate nothing (A-not-A questions, fixed phrases).
ZH_NOT_NEGATION = (  # ordered: blanked in this order
    "有没有",
    "是不是",
    "能不能",
    "可不可以",
    "要不要",
    "会不会",
    "好不好",
    "对不对",
    "行不行",
    "够不够",
    "不同",
    "不过",
    "不管",
    "不错",
    "不少",
    "不仅",
    "差不多",
    "无线",
    "无理由",
    "无障碍",
    "无论",
    "非常",
    "别的",
    "别人",
    "并非",
    "未来",
    "非法",
    "无法",
)
# Words with numeral characters that are not numbers.
ZH_NOT_NUMBER = (
    "一般",
    "一下",
    "一起",
    "一些",
    "一点",
    "一直",
    "一定",
    "一样",
    "一切",
    "一共",
    "一致",
    "万一",
    "十分",
    "一会",
    "统一",
    "唯一",
    "一旦",
    "一边",
    "一向",
    "一同",
    "一律",
    "一再",
    "千万",
    "三明治",
    "一路",
    "一口气",
    "一部分",
)
# 一 before a generic classifier is an article ("a", "one"), not a count that changes the answer.
ZH_ARTICLE_CLASSIFIERS = "个本首张件份位条只台部篇支句种款家间次杯些"

ZH_UNITS = {
    **dict.fromkeys(["公斤", "千克"], "kg"),
    "斤": "jin",
    "克": "g",
    "毫克": "mg",
    "毫升": "ml",
    "升": "l",
    **dict.fromkeys(["公里", "千米"], "km"),
    "英里": "mile",
    "米": "m",
    **dict.fromkeys(["元", "块", "块钱"], "cny"),
    **dict.fromkeys(["美元", "美金"], "usd"),
    "港币": "hkd",
    "人民币": "cny",
    "欧元": "eur",
    **dict.fromkeys(["天", "日"], "day"),
    **dict.fromkeys(["小时", "钟头"], "hour"),
    "分钟": "minute",
    "秒": "second",
    **dict.fromkeys(["月", "个月"], "month"),
    "年": "year",
    **dict.fromkeys(["周", "星期", "礼拜"], "week"),
    "晚": "night",
    "折": "discount",
    "成": "tenth",
    "杯": "cup",
    "件": "piece",
    "片": "tablet",
    **dict.fromkeys(["人", "位", "大人", "口人"], "person"),
    "岁": "age",
    "度": "degree",
    "点": "oclock",
    "号": "number",
    "期": "term",
    "章": "chapter",
    "层": "floor",
    "G": "gb",
    "毫安": "mah",
}

ZH_TIMES = _words(
    """
今天 明天 后天 昨天 前天 今晚 明晚 昨晚 上午 下午 早上 晚上 中午 凌晨 半夜 周末 工作日 节假日
假期 上周 下周 本周 这周 上个月 下个月 这个月 本月 月初 月底 月中 去年 今年 明年 春天 夏天 秋天
冬天 春季 夏季 秋季 冬季 春节 国庆 国庆节 中秋 中秋节 端午 端午节 元旦 清明 劳动节 元宵 七夕
圣诞 圣诞节
"""
)

ZH_POLARITY = {
    **dict.fromkeys(["开启", "开通", "打开", "启用", "开", "激活"], "on+"),
    **dict.fromkeys(["关闭", "关掉", "关", "禁用", "停用"], "on-"),
    **dict.fromkeys(["显示", "展开", "公开"], "vis+"),
    **dict.fromkeys(["隐藏", "收起", "私密"], "vis-"),
    **dict.fromkeys(["关注", "订阅"], "sub+"),
    **dict.fromkeys(["取关", "退订"], "sub-"),
    **dict.fromkeys(["绑定", "绑"], "bind+"),
    **dict.fromkeys(["解绑", "解除绑定"], "bind-"),
    **dict.fromkeys(["冻结"], "freeze+"),
    **dict.fromkeys(["解冻"], "freeze-"),
    **dict.fromkeys(["锁定", "锁"], "lock+"),
    **dict.fromkeys(["解锁"], "lock-"),
    **dict.fromkeys(["加密"], "crypt+"),
    **dict.fromkeys(["解密"], "crypt-"),
    **dict.fromkeys(["升级"], "grade+"),
    **dict.fromkeys(["降级"], "grade-"),
    **dict.fromkeys(
        ["调高", "升高", "提高", "增加", "调大", "大", "高", "加大", "变大", "增大", "提升"],
        "more+",
    ),
    **dict.fromkeys(
        ["调低", "降低", "减少", "调小", "小", "低", "减小", "变小", "降", "少"], "more-"
    ),
    **dict.fromkeys(["饭前", "前", "提前"], "order+"),
    **dict.fromkeys(["饭后", "后", "延期", "推迟", "延后"], "order-"),
    **dict.fromkeys(["登录", "登陆", "加入", "进入", "入群"], "in+"),
    **dict.fromkeys(["退出", "登出", "离开", "退群"], "in-"),
    **dict.fromkeys(["安装"], "install+"),
    **dict.fromkeys(["卸载"], "install-"),
    **dict.fromkeys(["上传"], "load+"),
    **dict.fromkeys(["下载"], "load-"),
    **dict.fromkeys(["合并"], "merge+"),
    **dict.fromkeys(["拆分", "分开"], "merge-"),
    **dict.fromkeys(["接受", "同意", "通过", "签收"], "accept+"),
    **dict.fromkeys(["拒绝", "拒收", "驳回"], "accept-"),
    **dict.fromkeys(["连接", "配对", "连"], "connect+"),
    **dict.fromkeys(["断开", "断开连接"], "connect-"),
    **dict.fromkeys(["好处", "优点", "益处", "优势", "利"], "merit+"),
    **dict.fromkeys(["坏处", "缺点", "弊端", "劣势", "弊"], "merit-"),
    **dict.fromkeys(["快", "很快", "加快"], "speed+"),
    **dict.fromkeys(["慢", "很慢", "变慢"], "speed-"),
    **dict.fromkeys(["充值", "存钱", "存款", "存"], "money+"),
    **dict.fromkeys(["提现", "取钱", "取款", "取"], "money-"),
    **dict.fromkeys(["付款", "支付", "付钱", "缴费", "交钱"], "pay+"),
    **dict.fromkeys(["退款", "退钱"], "pay-"),
    **dict.fromkeys(["添加", "加", "新增", "创建"], "exist+"),
    **dict.fromkeys(["删除", "删", "移除", "去掉", "去除", "去"], "exist-"),
    **dict.fromkeys(["买", "购买"], "buy+"),
    **dict.fromkeys(["卖", "出售"], "buy-"),
    **dict.fromkeys(["热", "加热", "升温"], "heat+"),
    **dict.fromkeys(["冷", "制冷", "降温"], "heat-"),
}

ZH_SYNONYMS = {
    "截屏": "截图",
    "更改": "修改",
    "改": "修改",
    "更换": "修改",
    "换": "修改",
    "查询": "查看",
    "查": "查看",
    "看": "查看",
    "手机号码": "手机号",
    "无线网": "wifi",
    "无线网络": "wifi",
    "价钱": "价格",
    "价": "价格",
    "费用": "价格",
    "钱": "价格",
    "物流": "快递",
    "包裹": "快递",
    "顾客": "客户",
    "预定": "预订",
    "注册": "开通",
    "照片": "图片",
    "相片": "图片",
    "电脑": "计算机",
    "营业": "开门",
    "提醒": "通知",
    **dict.fromkeys(["送货", "发货", "派送", "送"], "配送"),
    **dict.fromkeys(["星期天", "星期日", "礼拜天", "礼拜日", "周天"], "周日"),
    **{f"星期{d}": f"周{d}" for d in "一二三四五六"},
    **{f"礼拜{d}": f"周{d}" for d in "一二三四五六"},
}

# Words jieba should keep whole (products, payment methods, the polarity and time words above).
ZH_WORDS = _words(
    """
余额宝 支付宝 微信支付 云闪付 银联卡 花呗 借呗 京东白条 公众号 视频号 朋友圈 双重验证 两步验证
取钱 存钱 去水印 加水印 置顶 取关 解绑 解冻 解锁 调高 调低 调大 调小 拒收 签收 人工客服 节假日
工作日 周末 保修期 退货 换货 发票抬头 哪个城市 哪座城市
"""
)

_DIGITS = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7}
_DIGITS |= {"八": 8, "九": 9}
_POWERS = {"十": 10, "百": 100, "千": 1000}


def zh_numeral(text: str) -> str | None:
    """A Chinese numeral as a canonical number string ("两百" -> "200", "半" -> "0.5")."""
    if text == "半":
        return "0.5"
    total, section, digit = 0, 0, None
    for ch in text:
        if ch in _DIGITS:
            digit = _DIGITS[ch]
        elif ch in _POWERS:
            section += (1 if digit is None else digit) * _POWERS[ch]
            digit = None
        elif ch == "万":
            total += (section + (digit or 0)) * 10_000
            section, digit = 0, None
        else:
            return None
    return str(total + section + (digit or 0))
