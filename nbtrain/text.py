"""Text from data or files made safe to print: a character a terminal would act on rather than show (C0 and C1
controls, so every escape sequence; DEL; bidirectional overrides; line separators) is shown as its escape, never
sent as it is."""
import re

CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match):
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value, keep=""):
    """str(value) with its control characters escaped (\\x1b for ESC), but those in `keep` (a line's own "\\n")."""
    text = str(value)
    return CONTROLS.sub(lambda m: m.group() if m.group() in keep else _escape(m), text)
