"""`ops alerts`: rules over the fleet's messages, delivered to webhooks (JSON, WeCom, DingTalk)."""
