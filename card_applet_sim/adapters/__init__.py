"""Adapters of the card simulator: card image stores, vpcd (real PC/SC)."""
