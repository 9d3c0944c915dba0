"""Queued messages as producers see them: enqueue, parents and children, batches and chains, visibility
and tags, and the one INSERT every producer goes through."""
