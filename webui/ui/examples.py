"""Example inputs shown in each tab: the contracts, tickets and news this appliance is bought for."""

from model_loader.text import prompts

CONTRACT = (
    "本合同由甲方北京星河科技有限公司与乙方上海云帆信息技术有限公司于2024年3月15日在北京签订，"
    "乙方为甲方提供数据中心运维服务，合同总金额为人民币一百二十万元整，服务期限一年。"
)
TICKET = (
    "工单#A-2291：客户张伟反馈，订单号20231105的快递三天没有更新物流信息，"
    "已多次联系客服未果，要求尽快处理并补偿运费。"
)
NEWS = "小米集团今天在北京发布了新款手机，售价3999元，雷军表示首批备货50万台。"
REPORT = "阿里巴巴在杭州发布了2023年第三季度财报，营收同比增长9%，云计算业务增速放缓。"
INCIDENT = "华东区上海仓库的3号服务器于今天上午9点宕机，订单系统中断约40分钟，运维负责人李娜已到场处理。"

CLASSIFY = [
    [CONTRACT, "合同，客服工单，新闻，财务报告"],
    [TICKET, "投诉，咨询，表扬，退货"],
    [REPORT, "财经，体育，科技，娱乐，房产"],
    ["The customer says the invoice amount is wrong and asks for a corrected copy by Friday.",
     "billing, technical support, sales, complaint"],
]

EXTRACT = [
    [CONTRACT, "甲方，乙方，签订日期，合同金额"],
    [TICKET, "人名，订单号，诉求"],
    [NEWS, "公司名称，地点，人名，金额"],
    [INCIDENT, "地点，设备，时间，人名"],
]


PROMPTS = [
    [prompts.build_prompt(TICKET, prompts.CLASSIFY, ["投诉", "咨询", "表扬", "退货"])],
    [prompts.build_prompt(CONTRACT, prompts.EXTRACT, ["甲方", "乙方", "合同金额"])],
    [prompts.build_prompt(REPORT, prompts.CLASSIFY, ["财经", "体育", "科技"])],
]

DEFAULT_PROMPT = PROMPTS[0][0]
