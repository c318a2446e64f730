"""The OTA server's adapters: SQL store, key vault, delivery (in-process, PC/SC), API."""
