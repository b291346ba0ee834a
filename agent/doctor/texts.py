"""What doctor says, in Simplified Chinese and English: per message key a (finding, fix) pair.

docs/troubleshooting.md lists the same failures; a test keeps every key present in both.
"""

from __future__ import annotations

from agent.lang import Lang

LEVELS: dict[Lang, dict[str, str]] = {
    "zh": {"pass": "通过", "warn": "警告", "fail": "失败", "skip": "跳过"},
    "en": {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skip": "SKIP"},
}

HEADERS: dict[Lang, tuple[str, str, str, str]] = {
    "zh": ("检查项", "结果", "说明", "修复方法"),
    "en": ("check", "result", "finding", "fix"),
}

SUMMARY: dict[Lang, dict[str, str]] = {
    "zh": {
        "fail": "发现 {n} 项失败,请按“修复方法”处理后再运行 edge-agent doctor。",
        "warn": "没有失败项,有 {n} 项警告。",
        "pass": "全部通过。",
    },
    "en": {
        "fail": "{n} check(s) failed; apply the fixes and run edge-agent doctor again.",
        "warn": "No failures, {n} warning(s).",
        "pass": "All checks passed.",
    },
}

CHECKS: dict[Lang, dict[str, str]] = {
    "zh": {
        "config": "配置文件",
        "gps": "GPS 串口",
        "nfc": "NFC 读卡器串口",
        "broker.dns": "服务器域名解析",
        "broker.tcp": "服务器 TCP 连接",
        "broker.tls": "TLS 握手",
        "broker.mqtt": "MQTT 登录",
        "broker.acl": "MQTT 收发权限",
        "clock": "系统时钟",
        "disk": "磁盘空间",
        "state_dir": "状态目录权限",
        "gpio": "GPIO",
        "person model": "行人检测模型",
    },
    "en": {},
}

_ = ""  # no fix needed
MESSAGES: dict[str, dict[Lang, tuple[str, str]]] = {
    "config_ok": {
        "zh": ("{path}: {role} {dev}", _),
        "en": ("{path}: {role} {dev}", _),
    },
    "config_bad": {
        "zh": ("{key}: {why}", "按提示修改 {path} 后运行 edge-agent check-config {path}"),
        "en": ("{key}: {why}", "fix {path} and run edge-agent check-config {path}"),
    },
    "file_ok": {"zh": ("{path} 可读", _), "en": ("{path} readable", _)},
    "file_unreadable": {
        "zh": (
            "{path} 无法读取: {why}",
            "用 edge-agent provision 重新放置 {item},或检查路径与权限(ls -l {path})",
        ),
        "en": (
            "{path} cannot be read: {why}",
            "put {item} in place with edge-agent provision, or check the path and mode "
            "(ls -l {path})",
        ),
    },
    "cert_ok": {
        "zh": ("有效期至 {until}(还有 {days} 天)", _),
        "en": ("valid until {until} ({days} days)", _),
    },
    "cert_expiring": {
        "zh": ("{days} 天后过期({until})", "向运维申请新的 {item},用 edge-agent provision 安装"),
        "en": (
            "expires in {days} days ({until})",
            "get a new certificate for {item}; install it with edge-agent provision",
        ),
    },
    "cert_expired": {
        "zh": ("证书已于 {until} 过期", "向运维申请新的 {item},用 edge-agent provision 安装"),
        "en": (
            "certificate expired on {until}",
            "get a new certificate for {item}; install it with edge-agent provision",
        ),
    },
    "cert_not_yet": {
        "zh": ("证书要到 {since} 才生效:系统时钟可能落后", "先校准时钟(见“系统时钟”一项)"),
        "en": (
            "certificate valid only from {since}: the clock is probably behind",
            "set the clock first (see the clock check)",
        ),
    },
    "cert_bad": {
        "zh": ("{path} 不是 PEM 格式的证书", "重新放置正确的证书文件(edge-agent provision)"),
        "en": (
            "{path} is not a PEM certificate",
            "put the right certificate in place (edge-agent provision)",
        ),
    },
    "port_open": {
        "zh": (
            "{port} 打不开: {why}",
            "检查 {item} 的设备是否接好、路径是否正确(ls -l /dev/serial*),"
            "服务用户 {user} 是否在 dialout 组(sudo usermod -aG dialout {user})",
        ),
        "en": (
            "{port} cannot be opened: {why}",
            "check the device of {item} is plugged in and the path is right "
            "(ls -l /dev/serial*), and that the service user {user} is in group dialout "
            "(sudo usermod -aG dialout {user})",
        ),
    },
    "port_busy": {
        "zh": (
            "{port}({item})正被 {holder} 占用,不是本设备的 edge-agent",
            "停掉占用它的程序(如 sudo systemctl disable --now gpsd),或在 {item} 换一个串口",
        ),
        "en": (
            "{port} ({item}) is held by {holder}, not this device's edge-agent",
            "stop that program (e.g. sudo systemctl disable --now gpsd), or use another port "
            "in {item}",
        ),
    },
    "port_agent": {
        "zh": (
            "{port}({item})由正在运行的 edge-agent(pid {pid})打开:运行期间不探测设备本身",
            "要探测设备本身:sudo systemctl stop edge-agent,再运行 doctor,然后 start",
        ),
        "en": (
            "{port} ({item}) is open in the running edge-agent (pid {pid}): the device itself "
            "is not probed while it runs",
            "to probe the device itself: sudo systemctl stop edge-agent, run doctor, then "
            "sudo systemctl start edge-agent",
        ),
    },
    "gps_ok": {
        "zh": ("{port} 收到 {n} 条 NMEA 语句({baud} 波特)", _),
        "en": ("{port}: {n} NMEA sentences at {baud} baud", _),
    },
    "gps_garbage": {
        "zh": (
            "{port} 有数据但不是 NMEA:波特率 {baud} 可能不对",
            "把 [gps] baud 改成接收机的波特率(常见 9600 或 38400)",
        ),
        "en": (
            "{port} sends bytes but no NMEA: the baud rate {baud} is probably wrong",
            "set [gps] baud to the receiver's speed (usually 9600 or 38400)",
        ),
    },
    "gps_silent": {
        "zh": (
            "{port} 几秒内没有任何数据",
            "检查接线(TX 接 RX)、供电和串口是否已启用(docs/hardware.md)",
        ),
        "en": (
            "{port} sent nothing for seconds",
            "check the wiring (TX to RX), power, and that the UART is enabled (docs/hardware.md)",
        ),
    },
    "nfc_ok": {"zh": ("{port}: {fw}", _), "en": ("{port}: {fw}", _)},
    "nfc_silent": {
        "zh": (
            "{port} 上的 PN532 没有应答",
            "检查 PN532 拨码为 HSU(I0=0, I1=0)、接线和 [nfc] baud({baud})",
        ),
        "en": (
            "no PN532 answer on {port}",
            "check the PN532 is in HSU mode (I0=0, I1=0), the wiring and [nfc] baud ({baud})",
        ),
    },
    "camera_ok": {
        "zh": ("{source}: {w}×{h},约 {fps} 帧/秒", _),
        "en": ("{source}: {w}×{h}, about {fps} fps", _),
    },
    "camera_open": {
        "zh": (
            "{source} 打不开: {why}",
            "检查 {item} 的连接、地址与账号;服务用户 {user} 需在 video 组",
        ),
        "en": (
            "{source} cannot be opened: {why}",
            "check the cable, address and login of {item}; the service user {user} must be "
            "in group video",
        ),
    },
    "model_ok": {
        "zh": ("行人检测模型已校验: {path}", _),
        "en": ("person model verified: {path}", _),
    },
    "model_degraded": {
        "zh": (
            "摄像头 {cams} 降级运行(HOG + 人脸): {why}",
            "运行 `edge-agent models fetch` 下载并校验行人检测模型",
        ),
        "en": (
            "cameras {cams} run degraded (HOG + faces): {why}",
            "run `edge-agent models fetch` to download and verify the person model",
        ),
    },
    "camera_no_frame": {
        "zh": ("{source} 打开了但取不到画面", "检查摄像头供电与码流设置,或换一个分辨率"),
        "en": (
            "{source} opened but gave no frame",
            "check the camera's power and stream settings, or try another resolution",
        ),
    },
    "dns_ok": {"zh": ("{target} → {addrs}", _), "en": ("{target} → {addrs}", _)},
    "dns_fail": {
        "zh": ("{target} 域名解析失败: {why}", "检查 [broker] host 拼写和网络/DNS 设置"),
        "en": ("{target}: name not resolved: {why}", "check [broker] host and the network's DNS"),
    },
    "tcp_ok": {"zh": ("{target} 可连接", _), "en": ("{target} reachable", _)},
    "tcp_fail": {
        "zh": (
            "{target} 连接失败: {why}",
            "检查 [broker] port(TLS 一般 8883,明文 1883)、防火墙和网络",
        ),
        "en": (
            "{target}: cannot connect: {why}",
            "check [broker] port (8883 for TLS, 1883 plain), firewalls and the network",
        ),
    },
    "tls_ok": {"zh": ("TLS 握手成功", _), "en": ("TLS handshake done", _)},
    "tls_files": {
        "zh": (
            "TLS 文件无法使用: {why}",
            "证书与私钥不匹配或文件损坏:用 edge-agent provision 重新安装",
        ),
        "en": (
            "the TLS files cannot be used: {why}",
            "certificate and key do not match or a "
            "file is damaged: reinstall them with edge-agent provision",
        ),
    },
    "tls_verify": {
        "zh": (
            "服务器证书校验失败: {why}",
            "确认 ca_file 是服务器的 CA、host 与证书上的名称一致、时钟正确",
        ),
        "en": (
            "server certificate rejected: {why}",
            "check ca_file is the broker's CA, host "
            "matches the certificate's name, and the clock is right",
        ),
    },
    "tls_handshake": {
        "zh": ("TLS 握手失败: {why}", "确认该端口是 TLS 端口,且服务器接受本设备的证书"),
        "en": (
            "TLS handshake failed: {why}",
            "check the port speaks TLS and the broker accepts this device's certificate",
        ),
    },
    "mqtt_ok": {"zh": ("已登录 MQTT", _), "en": ("MQTT login accepted", _)},
    "mqtt_refused": {
        "zh": ("MQTT 登录被拒绝: {why}", "检查 username、password 凭据和服务器上的设备账号"),
        "en": (
            "MQTT login refused: {why}",
            "check username, the password credential and the device's account on the broker",
        ),
    },
    "acl_read": {
        "zh": ("不允许订阅本设备的下行主题", "请运维在服务器 ACL 中授权 grid/v1/<设备>/cmd 等主题"),
        "en": (
            "not allowed to subscribe to the device's downlink topics",
            "ask operations to grant grid/v1/<device>/cmd and desired/# in the broker ACL",
        ),
    },
    "acl_write": {
        "zh": ("不允许向本设备主题发布", "请运维在服务器 ACL 中授权 grid/v1/<设备>/# 的写权限"),
        "en": (
            "not allowed to publish on the device's topics",
            "ask operations to grant write access to grid/v1/<device>/# in the broker ACL",
        ),
    },
    "no_echo": {
        "zh": ("发布的测试消息没有回来", "服务器可能过载或丢消息:查看服务器日志"),
        "en": (
            "the test message did not come back",
            "the broker may be overloaded or dropping messages: see its log",
        ),
    },
    "roundtrip_ok": {"zh": ("测试消息往返成功", _), "en": ("test message round trip done", _)},
    "acked_ok": {"zh": ("测试消息已被服务器确认", _), "en": ("test message acknowledged", _)},
    "clock_synced": {"zh": ("已与 NTP 同步", _), "en": ("synchronised with NTP", _)},
    "clock_gps": {
        "zh": ("未与 NTP 同步,使用 GPS 时间", "联网后检查 systemd-timesyncd;GPS 时间可临时替代"),
        "en": (
            "not NTP-synchronised; GPS time stands in",
            "check systemd-timesyncd once online; GPS time covers meanwhile",
        ),
    },
    "clock_gps_agent": {
        "zh": (
            "未与 NTP 同步;GPS 时间未检查:GPS 串口由正在运行的 edge-agent 占用",
            "联网后检查 systemd-timesyncd;agent 定位后自己使用 GPS 时间",
        ),
        "en": (
            "not NTP-synchronised; GPS time not checked: the running edge-agent holds the GPS port",
            "check systemd-timesyncd once online; the agent uses GPS time itself once it has a fix",
        ),
    },
    "clock_unsynced": {
        "zh": (
            "时钟未同步,上报的时间会被标记为不可靠",
            "sudo timedatectl set-ntp true,并确认能访问 NTP 服务器(UDP 123)",
        ),
        "en": (
            "clock not synchronised: reports will carry time_ok=false",
            "sudo timedatectl set-ntp true and make sure NTP (UDP 123) is reachable",
        ),
    },
    "clock_unsynced_gps_silent": {
        "zh": (
            "时钟未同步,GPS 也没有给出时间",
            "让 GPS 在室外定位,或启用 NTP(sudo timedatectl set-ntp true)",
        ),
        "en": (
            "clock not synchronised and no GPS time yet",
            "give the GPS a sky view, or enable NTP (sudo timedatectl set-ntp true)",
        ),
    },
    "disk_ok": {"zh": ("剩余 {free_mb} MB", _), "en": ("{free_mb} MB free", _)},
    "disk_low": {
        "zh": (
            "剩余 {free_mb} MB,小于发件箱上限 {budget_mb} MB",
            "清理磁盘或调小 [sync] outbox_budget_bytes",
        ),
        "en": (
            "{free_mb} MB free, less than the outbox budget of {budget_mb} MB",
            "free space or lower [sync] outbox_budget_bytes",
        ),
    },
    "disk_full": {
        "zh": ("只剩 {free_mb} MB", "立即清理磁盘(journalctl --vacuum-size=50M 等)"),
        "en": ("only {free_mb} MB free", "free space now (journalctl --vacuum-size=50M, ...)"),
    },
    "disk_unknown": {
        "zh": ("无法读取磁盘空间", "检查 [device] state_dir 所在的文件系统"),
        "en": ("cannot read the free space", "check the file system of [device] state_dir"),
    },
    "state_ok": {"zh": ("{path} 可由 {user} 写入", _), "en": ("{path} writable by {user}", _)},
    "state_missing": {
        "zh": ("{path} 不存在", "sudo install -d -o {user} -g {user} -m 0750 {path}"),
        "en": ("{path} does not exist", "sudo install -d -o {user} -g {user} -m 0750 {path}"),
    },
    "state_not_dir": {
        "zh": ("{path} 不是目录", "把该文件移走,再建目录(见上一条)"),
        "en": ("{path} is not a directory", "move the file away and create the directory"),
    },
    "state_readonly": {
        "zh": ("{path} 无法写入: {why}", "文件系统是只读的或已损坏:检查 SD 卡(dmesg)后重启"),
        "en": (
            "{path} cannot be written: {why}",
            "the file system is read-only or damaged: check the SD card (dmesg) and reboot",
        ),
    },
    "state_not_writable": {
        "zh": (
            "{user} 不能写入 {path}(权限 {mode})",
            "sudo chown -R {user}:{user} {path} && sudo chmod 0750 {path}",
        ),
        "en": (
            "{user} cannot write {path} (mode {mode})",
            "sudo chown -R {user}:{user} {path} && sudo chmod 0750 {path}",
        ),
    },
    "trust_ok": {"zh": ("信任 {n} 个运维密钥", _), "en": ("{n} ops key(s) trusted", _)},
    "example_key": {
        "zh": (
            "[trust] ops_keys 仍信任随附示例配置里的公开示例密钥({kids}):"
            "任何人都能给本设备签发文档",
            "用自己的密钥替换:edge-agent ops keygen,再 sudo edge-agent provision --id ... "
            "--ops-key KID=KEY",
        ),
        "en": (
            "[trust] ops_keys still trusts the public example key of the shipped configs "
            "({kids}): anyone could sign documents for this device",
            "replace it with your own: edge-agent ops keygen, then sudo edge-agent provision "
            "--id ... --ops-key KID=KEY",
        ),
    },
    "gpio_unused": {"zh": ("未配置 [buttons]", _), "en": ("no [buttons] configured", _)},
    "gpio_ok": {"zh": ("引脚库 {factory}", _), "en": ("pin library {factory}", _)},
    "gpio_no_factory": {
        "zh": (
            "gpiozero 找不到可用的引脚库: {why}",
            "sudo apt install python3-lgpio,并确认虚拟环境用了 --system-site-packages",
        ),
        "en": (
            "gpiozero finds no pin library: {why}",
            "sudo apt install python3-lgpio and make sure the venv has --system-site-packages",
        ),
    },
}


def render(key: str, lang: Lang, params: dict[str, object]) -> tuple[str, str]:
    """The (finding, fix) text of `key` with `params` filled in."""
    msg, fix = MESSAGES[key][lang]
    return msg.format(**params), fix.format(**params)
