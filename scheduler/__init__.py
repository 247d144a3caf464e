"""The operator's loop: re-indexing, and (as later issues land) mining, training and the gate."""
