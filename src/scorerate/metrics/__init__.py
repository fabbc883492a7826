"""What a job measures: the score error, distances of the samples, the exact output law."""
