"""The ledger's own books: gapless invoice numbers, command receipts, its clock and
the record of the audit chain's seal."""
