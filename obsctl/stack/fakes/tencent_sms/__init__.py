"""A stand-in for Tencent Cloud SMS's SendSms API that checks what a real one checks."""
