"""GlobalPlatform card management, shared by the simulated SIM's issuer security domain and the
OTA server (ota.md §1): the SCP02 and SCP03 secure channels, DEK ciphers and key component
blocks, and the codecs of the card management commands. Pure: no I/O, no clock, no randomness
(challenges and sequence counters are parameters)."""
