namespace HybridServing.ClusterSimulator.Policies;

/// <summary>
/// Observed request rate per adapter over a sliding window of one-second buckets: what the gateway's
/// request counters give a control plane (a Prometheus <c>rate(...[window])</c>).
/// </summary>
internal sealed class DemandTracker
{
    private readonly int _buckets;
    private readonly int[][] _counts;
    private readonly long[] _total;
    private long _currentSecond = -1;

    public DemandTracker(int adapters, double windowSeconds)
    {
        _buckets = Math.Max(1, (int)Math.Round(windowSeconds));
        _counts = new int[_buckets][];
        for (var i = 0; i < _buckets; i++) _counts[i] = new int[adapters];
        _total = new long[adapters];
    }

    public double WindowSeconds => _buckets;

    public void Record(int adapter, double now)
    {
        Roll(now);
        _counts[_currentSecond % _buckets][adapter]++;
        _total[adapter]++;
    }

    /// <summary>Requests per second of each adapter over the window (or the time observed, when shorter).</summary>
    public double[] Rates(double now)
    {
        Roll(now);
        // The window holds the full previous buckets plus the part of the current second seen so far.
        var span = Math.Max(0.5, Math.Min(now, _buckets - 1 + (now - Math.Floor(now))));
        var rates = new double[_total.Length];
        for (var a = 0; a < rates.Length; a++) rates[a] = _total[a] / span;
        return rates;
    }

    private void Roll(double now)
    {
        var second = (long)Math.Floor(now);
        if (_currentSecond < 0) { _currentSecond = second; return; }
        while (_currentSecond < second)
        {
            _currentSecond++;
            var bucket = _counts[_currentSecond % _buckets];
            for (var a = 0; a < bucket.Length; a++)
            {
                _total[a] -= bucket[a];
                bucket[a] = 0;
            }
            // Long idle gaps: no need to clear more than the whole window.
            if (second - _currentSecond >= _buckets) _currentSecond = second - _buckets;
        }
    }
}
