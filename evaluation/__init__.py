"""The paper's evaluation protocol: held-out people, T frames, metrics, the Table 1 report."""
