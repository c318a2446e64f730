"""Clearing's pure domain core (clearing.md): commission per transaction, the 7:2:1 split,
channel-partner fees and POS deposits, and three-way reconciliation.

Integers only (fen, basis points); no I/O, no clock, no float, ``round()`` or Decimal. The
set-based SQL of the clearing run uses the very same integer formulas; these functions are the
reference the SQL is tested against.
"""
