/* Grid Edge companion page. ES5 only (no build step, no framework): runs on old phones. */
(function () {
  "use strict";
  var S = {
    zh: {
      title: "巡查终端", lang: "EN", pair_title: "配对手机", pair_help: "请输入巡查终端背面标签上的配对码。找不到标签，请问班长或管理员要配对码。",
      pair_btn: "配对", wrong_code: "配对码不对", rate_limited: "尝试太多，请稍等片刻再试", wait_s: "尝试太多，请等 {n} 秒再试", net: "连不上设备",
      today: "今日任务", waiting: "待发送", next: "下一个检查点", none_next: "没有待打卡的检查点",
      dist: "距离", dir: "方向", method: "打卡方式", gps: "定位停留", nfc: "NFC标签", manual: "手动",
      dwell: "停留", sec: "秒", photo_needed: "需拍照", no_fix: "无定位",
      checked: "已打卡", missed: "漏检", open: "未打卡", completed: "已完成", overdue: "已超时",
      msgs: "条消息", oldest: "最早", min_ago: "分钟前", unsent: "巡查事件排队", all_sent: "全部已发送",
      manual_btn: "手动打卡", checked_in: "已打卡！", at: "检查点",
      r_out_of_reach: "不在检查点范围内", r_no_fix: "没有定位，无法手动打卡", r_ambiguous: "附近有多个检查点，无法判断",
      r_no_active_task: "当前没有进行中的任务", queued: "已保存，等待存储",
      category: "类别", level: "等级", note: "备注", photo_btn: "拍照", photos: "张照片",
      send_btn: "提交事件", sent_ok: "已保存在设备上，联网后发送", sent_done: "已发送到指挥中心", pick: "请选择类别和等级",
      l1: "Ⅰ级 特别重大", l2: "Ⅱ级 重大", l3: "Ⅲ级 较大", l4: "Ⅳ级 一般",
      c_vending: "占道经营", c_parking: "违章停车", c_sanitation: "环境卫生", c_facility: "设施损坏",
      c_safety: "安全隐患", c_crowd: "人群聚集", c_water: "积水", c_fire: "火情", c_other: "其他",
      sos_btn: "紧急求助 SOS", sos_sure: "确定发送紧急求助？", sos_yes: "确定发送", cancel: "取消",
      sos_ok: "求助已保存在设备上，联网即发送", sos_done: "求助已发送到指挥中心",
      p_title: "您还好吗？", p_man_down: "设备发现您很久没有移动", p_lone_worker: "定时安全确认", p_left: "秒内不回应将自动报警",
      p_ok: "我没事", p_thanks: "已确认您平安", p_alarm: "没有回应，已自动报警",
      nav_tasks: "任务", nav_checkin: "打卡", nav_incident: "上报", nav_sos: "求助",
      h_gps: "定位", h_link: "网络", h_online: "在线", h_offline: "离线", h_wait: "待发", h_batt: "电量",
      expired: "会话已过期，请重新配对", err: "出错了"
    },
    en: {
      title: "Patrol device", lang: "中文", pair_title: "Pair this phone", pair_help: "Type the pairing code from the label on the back of the patrol device. No label? Ask your team leader or the administrator for the code.",
      pair_btn: "Pair", wrong_code: "Wrong code", rate_limited: "Too many tries, wait a moment", wait_s: "Too many tries, wait {n} s and try again", net: "Cannot reach the device",
      today: "Today's tasks", waiting: "Waiting to be sent", next: "Next checkpoint", none_next: "No checkpoint left to check in",
      dist: "Distance", dir: "Bearing", method: "Check-in by", gps: "GPS dwell", nfc: "NFC tag", manual: "manual",
      dwell: "dwell", sec: "s", photo_needed: "photo", no_fix: "no fix",
      checked: "checked", missed: "missed", open: "open", completed: "completed", overdue: "overdue",
      msgs: "messages", oldest: "oldest", min_ago: "min ago", unsent: "patrol events queued", all_sent: "everything sent",
      manual_btn: "Manual check-in", checked_in: "Checked in!", at: "checkpoint",
      r_out_of_reach: "Not within reach of a checkpoint", r_no_fix: "No GPS fix: manual check-in needs one", r_ambiguous: "Several checkpoints near, cannot tell which",
      r_no_active_task: "No task is running now", queued: "Saved, waiting for storage",
      category: "Category", level: "Level", note: "Note", photo_btn: "Take photo", photos: "photo(s)",
      send_btn: "File incident", sent_ok: "Saved on the device, will send when online", sent_done: "Sent to the command centre", pick: "Choose a category and level",
      l1: "I · Extremely severe", l2: "II · Severe", l3: "III · Major", l4: "IV · Ordinary",
      c_vending: "Street vending", c_parking: "Illegal parking", c_sanitation: "Sanitation", c_facility: "Broken facility",
      c_safety: "Safety hazard", c_crowd: "Crowd", c_water: "Standing water", c_fire: "Fire", c_other: "Other",
      sos_btn: "SOS emergency", sos_sure: "Really send an SOS?", sos_yes: "Send SOS", cancel: "Cancel",
      sos_ok: "SOS saved on the device, will send when online", sos_done: "SOS sent to the command centre",
      p_title: "Are you all right?", p_man_down: "You have not moved for a long time", p_lone_worker: "Regular safety check", p_left: "s left before the alarm goes off by itself",
      p_ok: "I'm OK", p_thanks: "Thanks, you are marked safe", p_alarm: "No answer: the alarm was raised",
      nav_tasks: "Tasks", nav_checkin: "Check-in", nav_incident: "Report", nav_sos: "SOS",
      h_gps: "GPS", h_link: "Link", h_online: "online", h_offline: "offline", h_wait: "queued", h_batt: "Battery",
      expired: "Session expired, pair again", err: "Error"
    }
  };
  var CATS = ["vending", "parking", "sanitation", "facility", "safety", "crowd", "water", "fire", "other"];
  var ARROWS = ["↑", "↗", "→", "↘", "↓", "↙", "←", "↖"];
  var lang = "zh", csrf = null, state = null, cat = null, level = null, photos = [], es = null, timer = null, last = null;
  /* What the page sent and is waiting to hear "sent" for: seq -> {el: message id, done: text key}. */
  var waitingFor = {}, ask = null, askTimer = null;
  try { lang = localStorage.getItem("lang") || "zh"; } catch (e) { /* private mode */ }

  function $(id) { return document.getElementById(id); }
  function t(k) { return S[lang][k] || S.zh[k] || k; }
  function esc(s) { return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) { return "&#" + c.charCodeAt(0) + ";"; }); }
  function show(el, on) { el.className = el.className.replace(/\s*hidden/g, "") + (on ? "" : " hidden"); }
  /* A message is kept as a function of the language, so the toggle re-translates it. */
  var shown = {};
  function msg(id, fn, good) {
    shown[id] = typeof fn === "function" ? fn : function () { return fn || ""; };
    $(id).textContent = shown[id](); $(id).className = "msg " + (good ? "good" : "err");
  }

  function applyLang() {
    var els = document.querySelectorAll("[data-t]"), i;
    for (i = 0; i < els.length; i++) { els[i].textContent = t(els[i].getAttribute("data-t")); }
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.title = t("title");
    $("lang").textContent = t("lang");
    buildChoices();
    if (state) { render(state); }
    for (var id in shown) { if (shown.hasOwnProperty(id)) { $(id).textContent = shown[id](); } }
    if (last) { $("confirm-text").textContent = confirmText(last); }
    if (ask) { showAsk(); }
    $("photo-count").textContent = photos.length ? photos.length + " " + t("photos") : "";
  }

  function api(method, path, body, cb) {
    var x = new XMLHttpRequest();
    x.open(method, path, true);
    if (method === "POST") { x.setRequestHeader("X-CSRF-Token", csrf || ""); }
    if (method === "POST" && body === null) { body = {}; }
    if (body !== null && !(body instanceof FormData)) { x.setRequestHeader("Content-Type", "application/json"); body = JSON.stringify(body); }
    x.onload = function () {
      var data = null;
      try { data = JSON.parse(x.responseText); } catch (e) { data = null; }
      if (x.status === 401 && path !== "/api/pair" && path !== "/api/session") { unpaired("expired"); return; }
      cb(x.status, data || {});
    };
    x.onerror = function () { cb(0, { error: "net" }); };
    x.send(body);
  }
  function errFn(status, d) { return function () { return errText(status, d); }; }
  function errText(status, d) {
    if (status === 0) { return t("net"); }
    if (d.error === "rate_limited" && d.retry_after_s) { return t("wait_s").replace("{n}", d.retry_after_s); }
    if (d.error && S[lang][d.error]) { return t(d.error); }
    return t("err") + " " + status + (d.message ? ": " + d.message : "");
  }

  function go(name) {
    var names = ["pair", "tasks", "checkin", "incident", "sos"], i, b = document.querySelectorAll("#nav button");
    for (i = 0; i < names.length; i++) { show($("s-" + names[i]), names[i] === name); }
    for (i = 0; i < b.length; i++) {
      var on = b[i].getAttribute("data-go") === name;
      b[i].className = b[i].className.replace(/\s*on/g, "") + (on ? " on" : "");
    }
    if (csrf) { refresh(); }
  }

  function unpaired(text) {
    csrf = null;
    if (es) { es.close(); es = null; }
    if (timer) { clearInterval(timer); timer = null; }
    show($("nav"), false); show($("health"), false); go("pair");
    if (text) { msg("pair-msg", function () { return t(text); }); }
  }
  function paired(token) {
    csrf = token;
    show($("nav"), true); show($("health"), true); go("tasks");
    refresh(); timer = setInterval(refresh, 5000);
    if (window.EventSource) {
      es = new EventSource("/api/events");
      es.addEventListener("checkin", function (ev) { confirmed(JSON.parse(ev.data)); });
      es.addEventListener("sent", function (ev) { delivered(JSON.parse(ev.data).seq); });
      es.addEventListener("prompt", function (ev) { asked(JSON.parse(ev.data)); });
      es.addEventListener("prompt_end", function (ev) { askEnded(JSON.parse(ev.data).outcome); });
    }
  }

  function refresh() {
    api("GET", "/api/state", null, function (s, d) {
      if (s !== 200) { return; }
      state = d; render(d);
      for (var i = 0; i < (d.sent || []).length; i++) { delivered(d.sent[i]); }
      if (d.prompt && !ask) { asked(d.prompt); } else if (!d.prompt && ask) { askEnded(null); }
    });
  }

  /* "Saved, will send when online" until the broker has it (the SSE "sent" event, or the state list). */
  function follow(seq, sent, el, waitKey, doneKey, extra) {
    if (sent) { msg(el, function () { return t(doneKey) + extra; }, true); return; }
    waitingFor[seq] = { el: el, done: doneKey, extra: extra };
    msg(el, function () { return t(waitKey) + extra; }, true);
  }
  function delivered(seq) {
    var w = waitingFor[seq];
    if (!w) { return; }
    delete waitingFor[seq];
    msg(w.el, function () { return t(w.done) + w.extra; }, true);
  }

  /* The device asks "are you all right?": full screen, a countdown, one big answer. */
  function asked(p) {
    ask = { kind: p.kind, until: Date.now() + 1000 * p.left_s };
    if (askTimer) { clearInterval(askTimer); }
    askTimer = setInterval(showAsk, 500);
    msg("ask-msg", "");
    show($("ask"), true); showAsk();
  }
  function showAsk() {
    if (!ask) { return; }
    $("ask-why").textContent = t("p_" + ask.kind);
    $("ask-left").textContent = String(Math.max(0, Math.ceil((ask.until - Date.now()) / 1000)));
  }
  function askEnded(outcome) {
    ask = null;
    if (askTimer) { clearInterval(askTimer); askTimer = null; }
    show($("ask"), false);
    if (outcome === "alarm") { msg("sos-msg", function () { return t("p_alarm"); }); go("sos"); }
  }

  function nextHtml(n) {
    if (!n) { return "<b>" + t("none_next") + "</b>"; }
    var m = [], i, h = "<div>" + t("next") + "</div><div class='big-num'>" + esc(n.name) + "</div>";
    if (n.dist_m === null) { h += "<div>" + t("no_fix") + "</div>"; } else {
      h += "<div>" + t("dist") + " <span class='big-num'>" + Math.round(n.dist_m) + " m</span> &nbsp; " + t("dir") +
        " <span class='arrow'>" + ARROWS[Math.round(n.bearing_deg / 45) % 8] + "</span> " + n.bearing_deg + "°</div>";
    }
    for (i = 0; i < n.methods.length; i++) { m.push(t(n.methods[i])); }
    h += "<div>" + t("method") + ": " + m.join(" / ") + " (" + t("dwell") + " " + n.dwell_s + t("sec") + ")" + (n.photo ? " · " + t("photo_needed") : "") + "</div>";
    return h;
  }

  function render(d) {
    var h = d.health, w = d.waiting, i, j, html = "";
    $("health").innerHTML =
      "<span class='" + (h.fix === "none" ? "bad" : "goodc") + "'>" + t("h_gps") + ": " + (h.fix === "none" ? t("no_fix") : esc(h.fix) + (h.acc_m !== null ? " ±" + h.acc_m + "m" : "")) + "</span>" +
      "<span class='" + (h.link ? "goodc" : "bad") + "'>" + t("h_link") + ": " + (h.link ? t("h_online") : t("h_offline")) + "</span>" +
      "<span>" + t("h_wait") + ": " + w.messages + "</span>" +
      (h.battery_pct !== null ? "<span>" + t("h_batt") + ": " + h.battery_pct + "%</span>" : "");
    $("next").innerHTML = nextHtml(d.next);
    $("next2").innerHTML = nextHtml(d.next);
    for (i = 0; i < d.tasks.length; i++) {
      var tk = d.tasks[i], pct = tk.total ? Math.round(100 * tk.checked / tk.total) : 0, cps = [];
      for (j = 0; j < tk.checkpoints.length; j++) { cps.push(esc(tk.checkpoints[j].name) + ": " + t(tk.checkpoints[j].state)); }
      html += "<div class='task'><b>" + esc(tk.name) + "</b> " + tk.checked + "/" + tk.total + (tk.missed ? " · " + t("missed") + " " + tk.missed : "") +
        (tk.ended ? " · " + t(tk.ended) : "") + "<progress max='100' value='" + pct + "'></progress><small>" + cps.join(" · ") + "</small></div>";
    }
    $("tasks").innerHTML = html;
    if (w.messages === 0 && w.patrol_unsent === 0) { $("waiting").innerHTML = t("all_sent"); } else {
      $("waiting").innerHTML = "<span class='big-num'>" + w.messages + "</span> " + t("msgs") + " (" + Math.round(w.bytes / 1024) + " KB)" +
        (w.oldest_ms ? "<br>" + t("oldest") + ": " + new Date(w.oldest_ms).toLocaleTimeString(lang === "zh" ? "zh-CN" : "en-GB") : "") +
        (w.patrol_unsent ? "<br>" + w.patrol_unsent + " " + t("unsent") : "");
    }
  }

  function confirmText(n) { return t("at") + " " + (n.checkpoint_name || n.checkpoint_id) + " (" + t(n.method) + ")"; }
  function confirmed(n) {
    var img = $("confirm-img");
    last = n;
    msg("manual-msg", "");
    $("confirm-text").textContent = confirmText(n);
    show($("confirm"), true);
    if (n.photos && n.photos.length) { img.src = "/api/photo/" + n.photos[0]; show(img, true); } else { show(img, false); }
    go("checkin");
    refresh();
  }

  function buildChoices() {
    var i, h = "";
    for (i = 0; i < CATS.length; i++) { h += "<button type='button' data-cat='" + CATS[i] + "'" + (cat === CATS[i] ? " class='sel'" : "") + ">" + t("c_" + CATS[i]) + "</button>"; }
    $("cats").innerHTML = h; h = "";
    for (i = 1; i <= 4; i++) { h += "<button type='button' data-level='" + i + "'" + (level === i ? " class='sel'" : "") + ">" + t("l" + i) + "</button>"; }
    $("levels").innerHTML = h;
  }

  $("lang").onclick = function () { lang = lang === "zh" ? "en" : "zh"; try { localStorage.setItem("lang", lang); } catch (e) { /* ignore */ } applyLang(); };
  $("pair").onclick = function () {
    api("POST", "/api/pair", { code: $("code").value }, function (s, d) {
      if (s === 200) { msg("pair-msg", ""); paired(d.csrf); } else { msg("pair-msg", errFn(s, d)); }
    });
  };
  var navs = document.querySelectorAll("#nav button"), k;
  for (k = 0; k < navs.length; k++) { navs[k].onclick = function () { go(this.getAttribute("data-go")); }; }
  $("manual").onclick = function () {
    msg("manual-msg", "");
    api("POST", "/api/checkin", null, function (s, d) {
      if (s === 201) { msg("manual-msg", function () { return d.queued ? t("queued") : t("checked_in"); }, true); refresh(); }
      else if (s === 409) { msg("manual-msg", function () { return t("r_" + d.reason) + (d.nearest_dist_m != null ? " (" + d.nearest_checkpoint_id + ": " + Math.round(d.nearest_dist_m) + " m)" : ""); }); }
      else { msg("manual-msg", errFn(s, d)); }
    });
  };
  $("cats").onclick = function (e) { var c = e.target.getAttribute("data-cat"); if (c) { cat = c; buildChoices(); } };
  $("levels").onclick = function (e) { var l = e.target.getAttribute("data-level"); if (l) { level = parseInt(l, 10); buildChoices(); } };
  $("photo").onchange = function () {
    if (this.files && this.files[0] && photos.length < 4) { photos.push(this.files[0]); }
    this.value = "";
    $("photo-count").textContent = photos.length ? photos.length + " " + t("photos") : "";
    $("photo-count").className = "msg good";
  };
  $("send").onclick = function () {
    if (!cat || !level) { msg("incident-msg", function () { return t("pick"); }); return; }
    var f = new FormData(), i;
    f.append("category", cat); f.append("level", String(level)); f.append("note", $("note").value);
    for (i = 0; i < photos.length; i++) { f.append("photo", photos[i], "photo" + i + ".jpg"); }
    $("send").disabled = true;
    api("POST", "/api/incident", f, function (s, d) {
      $("send").disabled = false;
      if (s === 201) {
        follow(d.seq, d.sent, "incident-msg", "sent_ok", "sent_done", " (#" + d.seq + ")");
        cat = null; level = null; photos = []; $("note").value = ""; $("photo-count").textContent = ""; buildChoices(); refresh();
      } else { msg("incident-msg", errFn(s, d)); }
    });
  };
  $("sos").onclick = function () { show($("sos-confirm"), true); show($("sos"), false); msg("sos-msg", ""); };
  $("sos-no").onclick = function () { show($("sos-confirm"), false); show($("sos"), true); };
  $("sos-yes").onclick = function () {
    show($("sos-confirm"), false); show($("sos"), true);
    api("POST", "/api/sos", { note: "companion SOS" }, function (s, d) {
      if (s === 201) { follow(d.seq, d.sent, "sos-msg", "sos_ok", "sos_done", ""); refresh(); } else { msg("sos-msg", errFn(s, d)); }
    });
  };

  $("ask-ok").onclick = function () {
    api("POST", "/api/safety/ok", null, function (s, d) {
      if (s === 200) { askEnded(null); if (d.answered) { msg("manual-msg", function () { return t("p_thanks"); }, true); } }
      else { msg("ask-msg", errFn(s, d)); }
    });
  };

  applyLang();
  api("GET", "/api/session", null, function (s, d) { if (s === 200) { paired(d.csrf); } else { unpaired(""); } });
}());
