"""Pure shared code for nfcpay: money, codecs, crypto recipes. No I/O, no clock, no randomness."""
