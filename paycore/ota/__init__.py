"""SMS-PP OTA (ota.md §2), shared by the SIM's OTA receiver and the OTA server. Pure codecs:

- ``security``: SPI, KIc/KID, the SCP80 keys, ciphers and checksums, the counter rule, PoR
  status codes (ETSI TS 102 225 §5.1);
- ``packet``: the command packet and the proof of receipt (TS 102 225 §5.1-5.2 in the SMS
  framing of 3GPP TS 31.115 §4);
- ``sms``: SMS-DELIVER / SMS-SUBMIT TPDUs, user data headers and concatenation (3GPP TS 23.040),
  the ENVELOPE (SMS-PP DOWNLOAD), the proactive SEND SHORT MESSAGE and TERMINAL RESPONSE
  (3GPP TS 31.111, ETSI TS 102 223);
- ``remote_apdu``: TS 102 226 §5.1 compact remote commands and their response.

Our choices where ota.md is silent are written down in docs/ota-packets.md.
"""
