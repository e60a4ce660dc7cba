using System.Globalization;
using System.Text.RegularExpressions;

namespace HybridServing.LiveValidation.Live;

/// <summary>
/// What the live gateway's overflow loads did in one run, read from its <c>/metrics</c>:
/// requests by outcome and the wall time they waited for the load (served or not).
/// </summary>
internal sealed partial record OverflowFigures(IReadOnlyDictionary<string, double> ByOutcome, double WaitCount, double WaitSumSeconds)
{
    public double MeanWaitSeconds => WaitCount > 0 ? WaitSumSeconds / WaitCount : 0;

    public static OverflowFigures Parse(string prometheusText)
    {
        var byOutcome = new SortedDictionary<string, double>(StringComparer.Ordinal);
        double count = 0, sum = 0;
        foreach (var line in prometheusText.Split('\n'))
        {
            if (line.StartsWith('#')) continue;
            if (Outcome().Match(line) is { Success: true } o)
                byOutcome[o.Groups[1].Value] = byOutcome.GetValueOrDefault(o.Groups[1].Value) + Number(o.Groups[2].Value);
            else if (WaitSum().Match(line) is { Success: true } s) sum += Number(s.Groups[1].Value);
            else if (WaitCountLine().Match(line) is { Success: true } c) count += Number(c.Groups[1].Value);
        }
        return new OverflowFigures(byOutcome, count, sum);
    }

    public string Describe() => ByOutcome.Count == 0
        ? "no overflow loads"
        : $"overflow loads: {string.Join(", ", ByOutcome.Select(kv => $"{kv.Value:0} {kv.Key}"))}; mean wait {MeanWaitSeconds * 1000:0} ms wall";

    private static double Number(string s) => double.Parse(s, NumberStyles.Float, CultureInfo.InvariantCulture);

    [GeneratedRegex(@"^hybridserving_gateway_overflows\w*\{[^}]*outcome=""([^""]+)""[^}]*\}\s+(\S+)")]
    private static partial Regex Outcome();

    [GeneratedRegex(@"^hybridserving_gateway_overflow_wait\w*_sum(?:\{[^}]*\})?\s+(\S+)")]
    private static partial Regex WaitSum();

    [GeneratedRegex(@"^hybridserving_gateway_overflow_wait\w*_count(?:\{[^}]*\})?\s+(\S+)")]
    private static partial Regex WaitCountLine();
}
