"""Pure card logic: the runtime, the applets and the card image. No I/O, no clock, no randomness
(the random source is passed in)."""
