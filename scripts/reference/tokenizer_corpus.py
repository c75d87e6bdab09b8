"""Builds the multilingual tokenizer test corpus (deterministic, no network).

Lines mix English, Chinese, Japanese, Korean, Arabic, Hebrew, Hindi, Thai, Cyrillic, Greek,
accented Latin (precomposed and decomposed), emoji with ZWJ/skin tones/flags, control and format
characters, tab/newline/whitespace runs, very long words, URLs, numbers, added-token look-alikes
and empty strings. Used by gen_tokenizer_goldens.py.
"""
import random

EN = ("the of and to in is was for on that with as by at from his an were are which this be "
      "or has had not but first one their its new after who they have her she two been other "
      "when there all also into only time can more would over some could many these may about "
      "then world people school house because through water under between number during "
      "without university government national international tokenizer transformer attention "
      "embedding gradient optimizer learning machine neural network language model sentence "
      "question answer context paragraph running jumped quickly unbelievable internationalization "
      "don't can't won't it's I'm you're we've they'll she'd o'clock rock'n'roll").split()
ZH = "的一是不了在人有我他这个们中来上大为和国地到以说时要就出会可也你对生能而子那得于着下自之年过发后作里用道行所然家种事成方多经么去法学如都同现当没动面起看定天分还进好小部其些主样理心她本前开但因只从想实日军者意无力它与长把机十民第公此已工使情明性知全三又关点正业外将两高间由问很最重并物手应战向头文体政美相见被利什二等产或新己制身果加西斯月话合回特代内信表化老给世位次度门任常先海通教儿原东声提立及比员解水名真论处走义各入几口认条平系气题活尔更别打女变四神总何电数安少报才结反受目太量再感建务做接必场件计管期市直德资命山金指克许统区保至队形社便空决治展马科司五基眼书非则听白却界达光放强即像难且权思王象完设式色路记南品住告类求据程北边死张该交规万取拉格望觉术领共确传师观清今切院让识候带导争运笑飞风步改收根干造言联持组每济车亲极林服快办议往元英士证近失转夫令准布始怎呢存未远叫台单影具罗字爱击流备兵连调深商算质团集百需价花党华城石级整府离况亚请技际约示复病息究线似官火断精满支视消越器容照须九增研写称企八功吗包片史委乎查轻易早曾除农找装广显吧阿李标谈吃图念六引历首医局突专费号尽另周较注语仅考落青随选列武红响虽推势参希古众构房半节土投某案黑维革划敌致陈律足态护七兴派孩验责营星够章音跟志底站严巴例防族供效续施留讲型料终答紧黄绝奇察母京段依批群项故按河米围江织害斗双境客纪采举杀攻父苏密低朝友诉止细愿千值仍男钱破网热助倒育属坐帝限船脸职速刻乐否刚威毛状率甚独球般普怕弹校苦创假久错承印晚兰试股拿脑预谁益阳若哪微尼继送急血惊伤素药适波夜省初喜卫源食险待述陆习置居劳财环排福纳欢雷警获模充负云停木游龙树疑层冷洲冲射略范竟句室异激汉村哈策演简卡罪判担州静退既衣您宗积余痛检差富灵协角占配征修皮挥胜降阶审沉坚善妈刘读啊超免压银买皇养伊怀执副乱抗犯追帮宣佛岁航优怪香著田铁控税左右份穿艺背阵草脚概恶块顿敢守酒岛托央户烈洋哥索胡款靠评版宝座释景顾弟登货互付伯慢欧换闻危忙核暗姐介坏讨丽良序升监临亮露永呼味野架域沙掉括舰鱼杂误湾吉减编楚肯测败屋跑梦散温困剑渐封救贵枪缺楼县尚毫移娘朋画班智亦耳恩短掌恐遗固席松秘谢鲁遇康虑幸均销钟诗藏赶剧票损忽巨炮旧端探湖录叶春乡附吸予礼港雨呀板庭妇归睛饭额含顺输摇招婚脱补谓督毒油疗旅泽材灭逐莫笔亡鲜词圣择寻厂睡博勒烟授诺伦岸奥唐卖俄炸载洛健堂旁宫喝借君禁阴园谋宋避抓荣姑孙逃牙束跳顶玉镇雪午练迫爷篇肉嘴馆遍凡础洞卷坦牛宁纸诸训私庄祖丝翻暴森塔默握戏隐熟骨访弱蒙歌店鬼软典欲萨伙遭盘爸扩盖弄雄稳忘亿刺拥徒姆杨齐赛趣曲刀床迎冰虚玩析窗醒妻透购替塞努休虎扬途侵刑绿兄迅套贸毕唯谷轮库迹尤竞街促延震弃甲伟麻川申缓潜闪售灯针哲络抵朱埃抱鼓植纯夏忍页杰筑折郑贝尊吴秀混臣雅振染盛怒舞圆搞狂措姓残秋培迷诚宽宇猛摆梅毁伸摩盟末乃悲拍丁赵"
HIRA = "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをんがぎぐげござじずぜぞだぢづでどばびぶべぼぱぴぷぺぽゃゅょっー"
KATA = "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヲンガギグゲゴザジズゼゾダヂヅデドバビブベボパピプペポャュョッー"
JA_WORDS = ["東京", "日本語", "私は", "学生です", "こんにちは", "ありがとう", "コンピューター", "トークナイザー",
            "カタカナ", "ひらがな", "漢字", "今日は良い天気ですね", "すみません", "ラーメン", "寿司"]
AR = ("مرحبا بالعالم كيف حالك اليوم شكرا جزيلا اللغة العربية جميلة كتاب مدرسة جامعة "
      "الحاسوب الذكاء الاصطناعي السلام عليكم").split()
HE = "שלום עולם תודה רבה ספר בית ספר".split()
HI = "नमस्ते दुनिया हिन्दी भाषा धन्यवाद किताब विद्यालय".split()
TH = "สวัสดีครับ ภาษาไทย ขอบคุณ".split()
KO = "안녕하세요 세계 한국어 감사합니다 학교 컴퓨터".split()
RU = "Привет мир как дела спасибо Москва язык ЁЖИК ёлка".split()
EL = "Καλημέρα κόσμε ΟΔΥΣΣΕΥΣ ἀρετή λόγος σοφία".split()
ACC = ("café naïve résumé Ångström Zürich São Paulo Łódź façade coöperate crème brûlée "
       "piñata jalapeño Dvořák Ærøskøbing İstanbul straße Weißwurst ÉCOLE Œuvre").split()
DECOMPOSED = ["cafe\u0301", "nai\u0308ve", "A\u030angstro\u0308m", "e\u0301\u0300", "a\u0316\u0301",
              "\u1100\u1161\u11a8", "o\u0302\u0323", "Z\u0335\u0330a\u0336l\u0334g\u0337o"]
EMOJI = ["😀", "😂", "👍", "👍🏽", "👨‍👩‍👧‍👦", "👩‍💻", "🏳️‍🌈", "🇫🇷", "🇯🇵", "❤️", "🫠", "🥹", "🧑🏿‍🚀",
         "✨", "🔥", "☕", "⚽️", "👁‍🗨", "🤷‍♀️", "1️⃣", "#️⃣"]
CTRL = ["\x00", "\x01", "\x07", "\x08", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\u200b", "\u200c",
        "\u200d", "\u200e", "\u2066", "\ufeff", "\ufffd", "\u00ad", "\ue000", "\U000f0000"]
WS = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2028",
      "\u2003", "\u202f", " \t \n "]
PUNCT = [".", ",", "!", "?", ";", ":", "...", "—", "–", "(", ")", "[", "]", "{", "}", "\"", "'",
         "«", "»", "“", "”", "‘", "’", "¿", "¡", "@", "#", "$", "%", "^", "&", "*", "-", "_",
         "+", "=", "/", "\\", "|", "~", "`", "<", ">", "、", "。", "，", "！", "？", "「", "」", "・"]
NUMS = ["0", "7", "42", "1999", "2024", "3.14159", "1,234,567.89", "-12", "+33", "1e-9", "0x1F",
        "½", "²", "³", "①", "Ⅻ", "٣٤٥", "१२३", "１２３", "100%", "$5.99", "€10", "¥500", "12:30",
        "2024-01-31", "555-0199", "v1.2.3", "10km", "3rd", "21st"]
URLS = ["http://example.com", "https://www.example.org/path/to/page?query=1&x=y#frag",
        "ftp://files.example.net/pub/file.tar.gz", "user.name+tag@mail.example.com",
        "www.test-site.co.uk/index.html", "https://例子.测试/路径", "C:\\Users\\me\\file.txt",
        "/usr/local/bin/python3", "@handle", "#hashtag", "<html><body>hi</body></html>"]
SPECIAL_LIKE = ["[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]", "[mask]", "[ MASK ]", "x[MASK]y",
                "[MASK][MASK]", "<s>", "</s>", "<url>", "C++", "hello world", "Hello World",
                "helloworld", "New York"]
FULLWIDTH = ["Ｈｅｌｌｏ", "ＡＢＣ", "ﬁnance", "ﬂow", "Ⓐⓑⓒ", "㍿", "™", "ℌ", "ǅ", "ß", "ΣΑΣ", "İ", "ı"]


def _rand_zh(r, n):
    return "".join(r.choice(ZH) for _ in range(n))


def _rand_kana(r, n):
    alpha = HIRA if r.random() < 0.5 else KATA
    return "".join(r.choice(alpha) for _ in range(n))


def _english(r, n):
    words = [r.choice(EN) for _ in range(n)]
    if r.random() < 0.5:
        words[0] = words[0].capitalize()
    s = " ".join(words)
    return s + r.choice([".", "!", "?", "", ",", "..."])


def _long_word(r):
    n = r.choice([99, 100, 101, 120, 150, 300])
    base = r.choice(["a", "ab", "xyz", "é", "日", "supercalifragilistic", "0"])
    return (base * (n // len(base) + 1))[:n]


def _piece(r):
    k = r.randrange(20)
    if k < 5:
        return _english(r, r.randint(1, 12))
    if k == 5:
        return _rand_zh(r, r.randint(1, 12))
    if k == 6:
        return r.choice(JA_WORDS) + _rand_kana(r, r.randint(0, 6))
    if k == 7:
        return " ".join(r.choice(AR) for _ in range(r.randint(1, 5)))
    if k == 8:
        return " ".join(r.choice(r.choice([HE, HI, TH, KO, RU, EL])) for _ in range(r.randint(1, 4)))
    if k == 9:
        return " ".join(r.choice(ACC + DECOMPOSED) for _ in range(r.randint(1, 4)))
    if k == 10:
        return "".join(r.choice(EMOJI) for _ in range(r.randint(1, 4)))
    if k == 11:
        return r.choice(EN) + r.choice(CTRL) + r.choice(EN)
    if k == 12:
        return r.choice(EN) + r.choice(WS) + r.choice(EN)
    if k == 13:
        return _long_word(r)
    if k == 14:
        return r.choice(URLS)
    if k == 15:
        return " ".join(r.choice(NUMS) for _ in range(r.randint(1, 4)))
    if k == 16:
        return r.choice(SPECIAL_LIKE)
    if k == 17:
        return r.choice(FULLWIDTH) + r.choice(["", " ", "-"]) + r.choice(FULLWIDTH)
    if k == 18:
        return "".join(r.choice(PUNCT) for _ in range(r.randint(1, 5)))
    return r.choice(EN) + r.choice(PUNCT) + r.choice(EN)


def build_corpus(n=2000, seed=1234):
    """n lines; the first ones are fixed edge cases, the rest random mixtures."""
    r = random.Random(seed)
    fixed = ["", " ", "   ", "\t", "\n", "\r\n", "\x00", "\ufffd", "\u200b", "a", "A", ".", "日",
             "😀", "👨‍👩‍👧‍👦", "[CLS]", "[MASK]", "hello world", "Hello, World!", "don't stop",
             "e\u0301", "İ", "ß", "ﬁ", "a" * 100, "a" * 101, "日" * 101, "x " * 60,
             "The quick brown fox jumps over the lazy dog.", "  leading and trailing  ",
             "tab\tsep\tvalues", "line1\nline2\nline3", "mixed 中文 and English 한국어 日本語",
             "مرحبا بالعالم", "Привет, мир!", "Καλημέρα κόσμε", "नमस्ते", "C++ and <url> here",
             "the New York Times", "1,234.56 $5.99 3rd ½ ² ①"]
    lines = list(fixed)
    while len(lines) < n:
        parts = [_piece(r) for _ in range(r.choice([1, 1, 2, 2, 3, 4]))]
        seps = [r.choice([" ", " ", " ", "", "\t", "\n", "  ", ", "]) for _ in parts]
        line = "".join(p + s for p, s in zip(parts, seps)).rstrip(" ") if r.random() < 0.8 else \
            "".join(p + s for p, s in zip(parts, seps))
        lines.append(line[:400])
    return lines[:n]


def build_pairs(lines, n=500, seed=99):
    r = random.Random(seed)
    return [(r.randrange(len(lines)), r.randrange(len(lines))) for _ in range(n)]
