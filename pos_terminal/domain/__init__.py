"""Pure terminal logic: transaction flows driving card and PSAM by APDUs."""
