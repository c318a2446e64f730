"""The composition root: the one `nfcpay` CLI over every component, and the demo.

It may import every component; no component imports it (ARCHITECTURE.md, ADR 0001)."""
