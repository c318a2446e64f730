"""The OTA server's domain (ota.md §3): SIM records, jobs turned into GP scripts and secured
packets, the job state machine, campaigns. Pure: counters, keys and dates are passed in."""
