"""Data stage: transactions, chat rendering/parsing, generation, import, validation, split."""
