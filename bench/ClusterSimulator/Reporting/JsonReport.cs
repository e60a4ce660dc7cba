using System.Text.Json;
using System.Text.Json.Serialization;
using HybridServing.ClusterSimulator.Cluster;
using HybridServing.ClusterSimulator.Experiments;

namespace HybridServing.ClusterSimulator.Reporting;

/// <summary>results.json: per policy the knee, P50/P99 TTFT per rate, loads by tier, tail ratio and recovery times.</summary>
internal static class JsonReport
{
    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static string Render(BenchmarkOutcome b, string command)
    {
        object Run(RunResult r) => new
        {
            rate = r.Rate,
            measuredRequests = r.Measured,
            completed = r.Completed,
            meetsSlo = r.MeetsSlo,
            stoppedEarly = r.Aborted,
            ttftP50 = r.Aborted ? (double?)null : r.TtftP50,
            ttftP99 = r.Aborted ? (double?)null : r.TtftP99,
            tpotP99 = r.Aborted ? (double?)null : r.TpotP99,
            throughputRps = r.ThroughputRps,
            outputTokensPerSecond = r.OutputTokensPerSecond,
            loadsPer1000ByTier = r.LoadsPer1000,
            coldHalfTtftP99 = r.ColdHalfTtftP99,
            hotTenthTtftP99 = r.HotTenthTtftP99,
            tailRatio = r.TailRatio,
        };
        var doc = new
        {
            benchmark = "docs/benchmarks.md §1 routing and placement (virtual time)",
            command,
            options = b.Options,
            wallSeconds = b.WallSeconds,
            referenceRate = b.ReferenceRate,
            operatingRate = b.OperatingRate,
            dynamicRate = b.DynamicRate,
            policies = b.Policies.Select(p => new
            {
                policy = p.Policy,
                description = p.Description,
                knee = p.Knee.Knee,
                kneeBounded = p.Knee.Bounded,
                firstFailingRate = double.IsFinite(p.Knee.FirstFailing) ? p.Knee.FirstFailing : (double?)null,
                kneeVsB0 = Ratio(p.Knee.Knee, b.Knee(Configuration.PolicyNames.B0)),
                kneeVsB1 = Ratio(p.Knee.Knee, b.Knee(Configuration.PolicyNames.B1)),
                kneeVsBInfinity = Ratio(p.Knee.Knee, b.Knee(Configuration.PolicyNames.BInfinity)),
                kneeProbes = p.Knee.Probes,
                steady = b.Sweep.Where(r => r.Policy == p.Policy).Select(Run),
                dynamic = b.Dynamic.Where(r => r.Policy == p.Policy).Select(r => new
                {
                    scenario = r.Scenario,
                    rate = r.Rate,
                    sloMetBeforeEvent = r.SloMetBeforeEvent,
                    failingWindowsAfterEvent = r.FailingWindowsAfterEvent,
                    recoverySeconds = r.RecoverySeconds,
                    restored = r.RecoverySeconds is not null,
                    hotAdapterOnTwoEnginesSeconds = r.FlashOnTwoEnginesSeconds,
                    ttftP99 = r.TtftP99,
                    loadsPer1000ByTier = r.LoadsPer1000,
                    windows = r.Windows,
                }),
            }),
            targets = Targets.Evaluate(b),
            tuning = b.Tuning,
        };
        return JsonSerializer.Serialize(doc, Json);
    }

    private static double? Ratio(double a, double b) => b > 0 && double.IsFinite(a) && double.IsFinite(b) ? a / b : null;
}
