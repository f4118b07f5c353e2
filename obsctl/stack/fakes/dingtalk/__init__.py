"""Fake of the DingTalk custom group robot webhook (``POST /robot/send?access_token=...``)."""
