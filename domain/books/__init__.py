"""The ledger's own books: gapless invoice numbers, command receipts and its clock."""
