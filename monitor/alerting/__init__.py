"""Alert rules over window metrics, the outbox that delivers them, and the sink formats."""
