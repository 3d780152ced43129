"""``just chaos``: scenarios that break the stack on purpose, and the tally of what they lost (see ``__main__``)."""
