"""Lambda entry points: one thin handler per stage of the state machine."""
