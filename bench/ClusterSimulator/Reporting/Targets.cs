using HybridServing.ClusterSimulator.Configuration;
using HybridServing.ClusterSimulator.Experiments;

namespace HybridServing.ClusterSimulator.Reporting;

/// <summary>One docs/benchmarks.md §1 target, what was measured for HybridServing, and whether it holds.</summary>
internal sealed record TargetCheck(string Figure, string Target, string Measured, bool? Holds);

internal static class Targets
{
    public static IReadOnlyList<TargetCheck> Evaluate(BenchmarkOutcome b, string ours = PolicyNames.HybridServing)
    {
        var Ours = ours;
        var o = b.Options;
        var checks = new List<TargetCheck>();
        var k = b.Knee(Ours);
        checks.Add(Ratio("knee vs B0", "≥ 2.5×", k, b.Knee(PolicyNames.B0), 2.5, atLeast: true));
        checks.Add(Ratio("knee vs B1", "≥ 1.6×", k, b.Knee(PolicyNames.B1), 1.6, atLeast: true));
        checks.Add(Ratio("knee vs B∞", "≥ 0.85×", k, b.Knee(PolicyNames.BInfinity), 0.85, atLeast: true));
        var ref0 = b.At(PolicyNames.B0, b.ReferenceRate);
        var ref1 = b.At(PolicyNames.B1, b.ReferenceRate);
        var refOurs = b.At(Ours, b.ReferenceRate);
        checks.Add(Ratio($"P99 TTFT at 0.8 × B0's knee ({b.ReferenceRate:0.#} req/s) vs B0", "≤ 0.1×", refOurs?.TtftP99, ref0?.TtftP99, 0.1, atLeast: false));
        checks.Add(Ratio($"P99 TTFT at 0.8 × B0's knee ({b.ReferenceRate:0.#} req/s) vs B1", "≤ 0.33×", refOurs?.TtftP99, ref1?.TtftP99, 0.33, atLeast: false));
        double? Cold(Cluster.RunResult? r) => r is null ? null : r.LoadsPer1000["local-disk"] + r.LoadsPer1000["object-store"];
        checks.Add(Ratio($"disk + object-store loads per 1,000 requests at {b.ReferenceRate:0.#} req/s vs B0", "≤ 0.25×", Cold(refOurs), Cold(ref0), 0.25, atLeast: false));
        var op = b.At(Ours, b.OperatingRate);
        checks.Add(new TargetCheck($"P99 TTFT coldest half ÷ hottest tenth at {b.OperatingRate:0.#} req/s", "≤ 3",
            op?.TailRatio is { } t ? $"{t:0.##} ({ExperimentRunner.Show(op.ColdHalfTtftP99)} s / {ExperimentRunner.Show(op.HotTenthTtftP99)} s)" : "not measured",
            op?.TailRatio is { } t2 ? t2 <= 3 : null));
        var flash = b.Dynamic.FirstOrDefault(r => r.Policy == Ours && r.Scenario == ScenarioNames.FlashCrowd);
        checks.Add(new TargetCheck("flash crowd: hot adapter on ≥ 2 engines", "≤ 10 s",
            flash is null ? "not run" : ExperimentRunner.Show(flash.FlashOnTwoEnginesSeconds) + " s",
            flash is null ? null : flash.FlashOnTwoEnginesSeconds <= 10));
        checks.Add(new TargetCheck("flash crowd: SLO restored", "≤ 15 s",
            flash is null ? "not run" : flash.RecoverySeconds is { } rs ? $"{rs:0.#} s" : "not restored",
            flash is null ? null : flash.RecoverySeconds <= 15));
        return checks;
    }

    private static TargetCheck Ratio(string figure, string target, double? ours, double? baseline, double bound, bool atLeast)
    {
        if (ours is not { } a || baseline is not { } b || double.IsNaN(a) || double.IsNaN(b))
            return new TargetCheck(figure, target, "not measured", null);
        if (b == 0 || double.IsInfinity(b) || double.IsInfinity(a))
        {
            // Degenerate ratios: a zero or unbounded baseline, or an unbounded figure of ours.
            var edge = atLeast ? (b == 0 && a > 0) : (double.IsInfinity(b) && double.IsFinite(a)) || (b == 0 && a == 0);
            return new TargetCheck(figure, target, $"{ExperimentRunner.Show(a)} vs {ExperimentRunner.Show(b)}", edge);
        }
        var ratio = a / b;
        var holds = atLeast ? ratio >= bound : ratio <= bound;
        return new TargetCheck(figure, target, $"{ratio:0.##}× ({ExperimentRunner.Show(a)} vs {ExperimentRunner.Show(b)})", holds);
    }
}
