"""Word pools for the org generator.

Real WeCom orgs are full of things that break naive code: CJK names, characters outside the Basic
Multilingual Plane, emoji (including ZWJ sequences and flags), quotes and apostrophes inside names,
fullwidth punctuation. The pools below make the generated org exercise all of them while staying
plausible to a reader browsing the demo tables.
"""

# Fullwidth punctuation in these pools is deliberate: it is what Chinese text contains.
# ruff: noqa: RUF001

from __future__ import annotations

FULLWIDTH_OPEN, FULLWIDTH_CLOSE = "（", "）"

# (hanzi, pinyin) — common surnames first, a few compound ones, so romanised userids look real.
SURNAMES: tuple[tuple[str, str], ...] = (
    ("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"), ("杨", "yang"),
    ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"), ("徐", "xu"), ("孙", "sun"),
    ("马", "ma"), ("朱", "zhu"), ("胡", "hu"), ("郭", "guo"), ("何", "he"), ("高", "gao"),
    ("林", "lin"), ("罗", "luo"), ("郑", "zheng"), ("梁", "liang"), ("谢", "xie"), ("宋", "song"),
    ("唐", "tang"), ("许", "xu"), ("韩", "han"), ("冯", "feng"), ("邓", "deng"), ("曹", "cao"),
    ("彭", "peng"), ("曾", "zeng"), ("肖", "xiao"), ("田", "tian"), ("董", "dong"), ("袁", "yuan"),
    ("潘", "pan"), ("于", "yu"), ("蒋", "jiang"), ("蔡", "cai"), ("余", "yu"), ("杜", "du"),
    ("叶", "ye"), ("程", "cheng"), ("苏", "su"), ("魏", "wei"), ("吕", "lv"), ("丁", "ding"),
    ("任", "ren"), ("沈", "shen"), ("姚", "yao"), ("卢", "lu"), ("姜", "jiang"), ("崔", "cui"),
    ("钟", "zhong"), ("谭", "tan"), ("陆", "lu"), ("汪", "wang"), ("范", "fan"), ("金", "jin"),
    ("石", "shi"), ("廖", "liao"), ("贾", "jia"), ("夏", "xia"), ("韦", "wei"), ("付", "fu"),
    ("方", "fang"), ("白", "bai"), ("邹", "zou"), ("孟", "meng"), ("熊", "xiong"), ("秦", "qin"),
    ("邱", "qiu"), ("江", "jiang"), ("尹", "yin"), ("薛", "xue"), ("闫", "yan"), ("段", "duan"),
    ("雷", "lei"), ("侯", "hou"), ("龙", "long"), ("史", "shi"), ("陶", "tao"), ("黎", "li"),
    ("贺", "he"), ("顾", "gu"), ("毛", "mao"), ("郝", "hao"), ("龚", "gong"), ("邵", "shao"),
    ("万", "wan"), ("钱", "qian"), ("严", "yan"), ("覃", "qin"), ("武", "wu"), ("戴", "dai"),
    ("欧阳", "ouyang"), ("司马", "sima"), ("上官", "shangguan"), ("诸葛", "zhuge"),
)  # fmt: skip

# (hanzi, pinyin) for given-name characters; "𠮷" lies outside the BMP (4 bytes in UTF-8).
GIVEN: tuple[tuple[str, str], ...] = (
    ("伟", "wei"), ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"),
    ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"), ("勇", "yong"), ("艳", "yan"),
    ("杰", "jie"), ("娟", "juan"), ("涛", "tao"), ("明", "ming"), ("超", "chao"), ("秀", "xiu"),
    ("霞", "xia"), ("平", "ping"), ("刚", "gang"), ("英", "ying"), ("华", "hua"), ("文", "wen"),
    ("玉", "yu"), ("建", "jian"), ("国", "guo"), ("海", "hai"), ("红", "hong"), ("波", "bo"),
    ("辉", "hui"), ("鹏", "peng"), ("飞", "fei"), ("宇", "yu"), ("浩", "hao"), ("凯", "kai"),
    ("晨", "chen"), ("欣", "xin"), ("雪", "xue"), ("琳", "lin"), ("婷", "ting"), ("子", "zi"),
    ("涵", "han"), ("轩", "xuan"), ("梓", "zi"), ("睿", "rui"), ("思", "si"), ("嘉", "jia"),
    ("怡", "yi"), ("佳", "jia"), ("博", "bo"), ("然", "ran"), ("昊", "hao"), ("天", "tian"),
    ("泽", "ze"), ("瑞", "rui"), ("雨", "yu"), ("萱", "xuan"), ("一", "yi"), ("诺", "nuo"),
    ("晓", "xiao"), ("小", "xiao"), ("志", "zhi"), ("春", "chun"), ("丹", "dan"), ("斌", "bin"),
    ("琪", "qi"), ("楠", "nan"), ("三", "san"), ("四", "si"), ("五", "wu"), ("𠮷", "ji"),
)  # fmt: skip

# Emoji of several encodings: single code point, with variation selector, ZWJ sequence, flag.
EMOJI: tuple[str, ...] = ("😀", "🌸", "🚀", "🐼", "✨", "🍀", "🎉", "☕️", "👩‍💻", "🇨🇳")

ENGLISH_NAMES: tuple[str, ...] = (
    "Leo", "Amy", "Jack", "Lucy", "Kevin", "Iris", "Tony", "Grace", "Eric", "Vivian", "Sam",
    "Cathy", "Peter", "Zoe", "Mike", "Nina",
)  # fmt: skip

# Names written with a middle dot, as for many minority and foreign names in Chinese.
DOTTED_NAMES: tuple[tuple[str, str], ...] = (
    ("迪丽热巴·迪力木拉提", "dilireba"),
    ("阿依古丽·买买提", "ayiguli"),
    ("约翰·史密斯", "john.smith"),
    ("玛丽亚·冈萨雷斯", "maria.gonzalez"),
)

POSITIONS: tuple[str, ...] = (
    "工程师", "高级工程师", "技术专家（P7）", "架构师", "产品经理", "设计师", "测试工程师",
    "运营专员", "销售经理", "大客户经理", "财务主管", "会计", "人事专员", "HRBP", "法务顾问",
    "客服代表", "数据分析师", "项目经理", "总监", "副总裁", "实习生", "行政助理",
    "Software Engineer", "Staff Engineer", "",
)  # fmt: skip

# (Chinese, English) department functions and regions; suffixes pair with an English word.
FUNCTIONS: tuple[tuple[str, str], ...] = (
    ("研发", "R&D"), ("产品", "Product"), ("市场", "Marketing"), ("销售", "Sales"),
    ("财务", "Finance"), ("人力资源", "HR"), ("法务", "Legal"), ("运营", "Operations"),
    ("客户成功", "Customer Success"), ("设计", "Design"), ("质量保障", "QA"), ("数据", "Data"),
    ("信息安全", "Security"), ("行政", "Admin"), ("采购", "Procurement"),
    ("供应链", "Supply Chain"), ("品牌", "Brand"), ("战略", "Strategy"), ("平台", "Platform"),
    ("基础架构", "Infrastructure"),
)  # fmt: skip

REGIONS: tuple[tuple[str, str], ...] = (
    ("华东", "East China"), ("华南", "South China"), ("华北", "North China"),
    ("西南", "Southwest"), ("北京", "Beijing"), ("上海", "Shanghai"), ("深圳", "Shenzhen"),
    ("杭州", "Hangzhou"), ("成都", "Chengdu"), ("武汉", "Wuhan"), ("新加坡", "Singapore"),
    ("香港", "Hong Kong"),
)  # fmt: skip

SUFFIXES: tuple[tuple[str, str], ...] = (
    ("部", "Dept."), ("中心", "Center"), ("组", "Team"), ("事业部", "Division"),
    ("办公室", "Office"), ("小组", "Squad"),
)  # fmt: skip

TEAM_NUMBERS: tuple[str, ...] = ("一", "二", "三", "四", "五", "六", "七", "八", "九")

# Department names that need escaping or careful display.
ODD_DEPARTMENT_NAMES: tuple[str, ...] = (
    "🚀 增长黑客组",
    '"星火"计划组',
    "R&D 中心",
    "Ops/SRE 小组",
    "AI Lab（北京）",
    "O'Reilly 合作办公室",
    "𠮷野家合作项目组",
    "✨ 新人训练营",
)

COMPANY_NAMES: tuple[tuple[str, str], ...] = (
    ("星河科技有限公司", "Galaxy Tech Co., Ltd."),
    ("蓝海网络科技", "Blue Ocean Networks"),
    ("云帆集团", "Cloud Sail Group"),
    ("青禾信息技术有限公司", "Qinghe IT Ltd."),
)

# (attribute name, value) pairs for text-type custom fields; an empty value is legal in WeCom.
EXTATTR_TEXTS: tuple[tuple[str, str], ...] = (
    ("办公地点", "A座 3F-021"),
    ("成本中心", "CC-1024"),
    ("English Name", "Leo"),
    ("备注", ""),
    ("座右铭", '"Stay hungry" 🍀'),
)
