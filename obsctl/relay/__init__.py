"""The DingTalk relay: Alertmanager webhooks in, paced and signed DingTalk robot messages out."""
