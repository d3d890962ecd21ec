"""Latency histogram buckets shared by the usage writes and reads."""

import bisect

# Upper bounds in milliseconds; the last bucket holds everything slower.
LATENCY_BOUNDS_MS = [1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000, 10000]


def latency_bucket(latency_ms):
    return bisect.bisect_left(LATENCY_BOUNDS_MS, latency_ms)


def histogram_percentile(histogram, fraction):
    """The upper bound of the bucket holding the given fraction of requests (None without requests).

    Requests slower than the last bound count as the last bound: the figure is a floor there.
    """
    total = sum(histogram)
    if not total:
        return None
    seen = 0
    for index, count in enumerate(histogram):
        seen += count
        if seen >= fraction * total:
            return float(LATENCY_BOUNDS_MS[min(index, len(LATENCY_BOUNDS_MS) - 1)])
    return None
