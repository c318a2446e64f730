"""ISO 8583 for the POS terminal and the acquiring host (host_protocol.md), one module set:

- ``spec``: the pyiso8583 spec of the profile (§2);
- ``frame``: TCP framing, TPDU and header (§1);
- ``message``: field dicts to bytes and back, the §5 request table;
- ``fields``: field 48, 58, 60, 61 codecs and the code values;
- ``mac``: the CUP ECB MAC (field 64) and the working keys (field 62) (§3).
"""
