using System.Globalization;

namespace HybridServing.Bench.Load;

/// <summary>Latency percentiles from all samples (sorted array, nearest rank): exact, and small enough at these rates.</summary>
internal sealed class LatencyStats
{
    private readonly double[] _sortedMs;

    public LatencyStats(IEnumerable<double> samplesMs)
    {
        _sortedMs = [.. samplesMs];
        Array.Sort(_sortedMs);
    }

    public int Count => _sortedMs.Length;
    public double Mean => _sortedMs.Length == 0 ? double.NaN : _sortedMs.Average();
    public double Max => _sortedMs.Length == 0 ? double.NaN : _sortedMs[^1];
    public double P50 => Percentile(50);
    public double P90 => Percentile(90);
    public double P99 => Percentile(99);
    public double P999 => Percentile(99.9);

    public double Percentile(double p)
    {
        if (_sortedMs.Length == 0) return double.NaN;
        var rank = (int)Math.Ceiling(p / 100 * _sortedMs.Length);
        return _sortedMs[Math.Clamp(rank - 1, 0, _sortedMs.Length - 1)];
    }

    public static string Ms(double ms) => double.IsNaN(ms) ? "—" : ms.ToString(ms < 10 ? "0.000" : "0.0", CultureInfo.InvariantCulture);
}

/// <summary>What one load run measured.</summary>
internal sealed record LoadResult(
    string Target,
    string Mode,
    TimeSpan Duration,
    long Completed,
    long Errors,
    LatencyStats Latency,
    LatencyStats FirstByte,
    string? FirstError)
{
    public double RequestsPerSecond => Completed / Duration.TotalSeconds;
}
