"""``pipeline normalize``: core-banking CDC records onto the contract's access-events topic."""
