namespace HybridServing.ClusterSimulator.Cluster;

/// <summary>What one simulation run measured (requests arriving in the measured window).</summary>
internal sealed record RunResult
{
    public required string Policy { get; init; }
    public required string Scenario { get; init; }
    public required double Rate { get; init; }
    public required int Measured { get; init; }
    public required int Completed { get; init; }
    /// <summary>Stopped early: the SLO was already lost (knee search) or the queues ran away.</summary>
    public required bool Aborted { get; init; }
    public required bool MeetsSlo { get; init; }
    public required double TtftP50 { get; init; }
    public required double TtftP99 { get; init; }
    public required double TpotP99 { get; init; }
    public required double ThroughputRps { get; init; }
    public required double OutputTokensPerSecond { get; init; }
    /// <summary>Adapter loads per 1,000 measured requests: host→GPU, local disk→host, object store→disk.</summary>
    public required IReadOnlyDictionary<string, double> LoadsPer1000 { get; init; }
    public double? ColdHalfTtftP99 { get; init; }
    public double? HotTenthTtftP99 { get; init; }
    public double? TailRatio => ColdHalfTtftP99 is { } c && HotTenthTtftP99 is { } h && h > 0 ? c / h : null;
    /// <summary>Dynamic scenarios: seconds from the event until the first failing stretch of windows ends (0 = none failed; null = never).</summary>
    public double? RecoverySeconds { get; init; }
    /// <summary>Flash crowd: seconds from the event until the hot adapter is registered on ≥ 2 engines (null = never).</summary>
    public double? FlashOnTwoEnginesSeconds { get; init; }
    public bool? SloMetBeforeEvent { get; init; }
    /// <summary>Dynamic scenarios: windows after the event whose P99s miss the SLO.</summary>
    public int? FailingWindowsAfterEvent { get; init; }
    public IReadOnlyList<WindowStat> Windows { get; init; } = [];
    public double WallSeconds { get; init; }
}

/// <summary>P99 latency of the requests arriving in one window of a dynamic scenario.</summary>
internal sealed record WindowStat(double Start, int Requests, double TtftP99, double TpotP99, bool MeetsSlo);

internal static class Percentiles
{
    /// <summary>Nearest-rank percentile; +∞ values (unfinished requests) sort last.</summary>
    public static double Of(List<double> sortedOrNot, double q, bool sorted = false)
    {
        if (sortedOrNot.Count == 0) return double.NaN;
        if (!sorted) sortedOrNot.Sort();
        var rank = (int)Math.Ceiling(q * sortedOrNot.Count);
        return sortedOrNot[Math.Clamp(rank - 1, 0, sortedOrNot.Count - 1)];
    }

    /// <summary>How many violations of a threshold make the nearest-rank P99 exceed it.</summary>
    public static int ViolationsToFail(int n, double q) => n - (int)Math.Ceiling(q * n) + 1;
}
