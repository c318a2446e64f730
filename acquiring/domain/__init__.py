"""Pure host logic."""
