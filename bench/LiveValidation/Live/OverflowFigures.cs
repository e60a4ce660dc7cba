using HybridServing.Contracts.Metrics;

namespace HybridServing.LiveValidation.Live;

/// <summary>
/// What the live gateway's overflow loads did in one run, read from its <c>/metrics</c>:
/// requests by outcome and the wall time they waited for the load (served or not).
/// </summary>
internal sealed record OverflowFigures(IReadOnlyDictionary<string, double> ByOutcome, double WaitCount, double WaitSumSeconds)
{
    private const string Counter = "hybridserving_gateway_overflows";
    private const string Wait = "hybridserving_gateway_overflow_wait";

    public double MeanWaitSeconds => WaitCount > 0 ? WaitSumSeconds / WaitCount : 0;

    public static OverflowFigures Parse(string prometheusText)
    {
        var byOutcome = new SortedDictionary<string, double>(StringComparer.Ordinal);
        double count = 0, sum = 0;
        foreach (var s in PrometheusText.Parse(prometheusText))
        {
            if (!s.Name.StartsWith("hybridserving_gateway_overflow", StringComparison.Ordinal)) continue;
            if (s.Name.StartsWith(Counter, StringComparison.Ordinal) && s.Label("outcome") is { } outcome)
                byOutcome[outcome] = byOutcome.GetValueOrDefault(outcome) + s.Value;
            else if (s.Name.StartsWith(Wait, StringComparison.Ordinal) && s.Name.EndsWith("_sum", StringComparison.Ordinal)) sum += s.Value;
            else if (s.Name.StartsWith(Wait, StringComparison.Ordinal) && s.Name.EndsWith("_count", StringComparison.Ordinal)) count += s.Value;
        }
        return new OverflowFigures(byOutcome, count, sum);
    }

    public string Describe() => ByOutcome.Count == 0
        ? "no overflow loads"
        : $"overflow loads: {string.Join(", ", ByOutcome.Select(kv => $"{kv.Value:0} {kv.Key}"))}; mean wait {MeanWaitSeconds * 1000:0} ms wall";
}
