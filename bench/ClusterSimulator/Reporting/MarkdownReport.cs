using System.Globalization;
using System.Text;
using HybridServing.ClusterSimulator.Configuration;
using HybridServing.ClusterSimulator.Experiments;

namespace HybridServing.ClusterSimulator.Reporting;

/// <summary>The docs/benchmarks.md §1 figures as a markdown page (results.md).</summary>
internal static class MarkdownReport
{
    public static string Render(BenchmarkOutcome b, string command)
    {
        var o = b.Options;
        var s = new StringBuilder();
        string F(double v) => v.ToString(v >= 100 ? "0" : "0.#", CultureInfo.InvariantCulture);
        string T(double? v) => ExperimentRunner.Show(v);
        string R(double a, double c) => c > 0 && double.IsFinite(a) ? (a / c).ToString("0.##", CultureInfo.InvariantCulture) + "×" : "—";

        s.AppendLine("# Cluster simulator: routing and placement (docs/benchmarks.md §1)");
        s.AppendLine();
        s.AppendLine($"Workload: {o.Describe()}. SLO: P99 TTFT ≤ {o.SloTtft} s and P99 TPOT ≤ {o.SloTpot * 1000} ms. Virtual time; the wall clock took {b.WallSeconds:0} s.");
        s.AppendLine();
        s.AppendLine("```");
        s.AppendLine(command);
        s.AppendLine("```");
        s.AppendLine();
        s.AppendLine("## Knee (highest rate meeting the SLO, steady state) and latency at shared rates");
        s.AppendLine();
        s.AppendLine($"Shared rates: **{F(b.ReferenceRate)} req/s** = 0.8 × B0's knee; **{F(b.OperatingRate)} req/s** = 0.8 × HybridServing's knee.");
        s.AppendLine();
        s.AppendLine($"| policy | knee (req/s) | vs B0 | vs B1 | vs B∞ | P50 / P99 TTFT @ {F(b.ReferenceRate)} (s) | P50 / P99 TTFT @ {F(b.OperatingRate)} (s) | throughput @ {F(b.OperatingRate)} (req/s) | cold-half ÷ hot-tenth P99 TTFT @ {F(b.OperatingRate)} |");
        s.AppendLine("|---|---|---|---|---|---|---|---|---|");
        var k0 = b.Knee(PolicyNames.B0);
        var k1 = b.Knee(PolicyNames.B1);
        var kInf = b.Knee(PolicyNames.BInfinity);
        foreach (var p in b.Policies)
        {
            var refRun = b.At(p.Policy, b.ReferenceRate);
            var op = b.At(p.Policy, b.OperatingRate);
            var knee = p.Knee.Bounded ? F(p.Knee.Knee) : $"≥ {F(p.Knee.Knee)}";
            s.AppendLine($"| {Label(p.Policy)} | {knee} | {R(p.Knee.Knee, k0)} | {R(p.Knee.Knee, k1)} | {R(p.Knee.Knee, kInf)} | " +
                $"{T(refRun?.TtftP50)} / {T(refRun?.TtftP99)} | {T(op?.TtftP50)} / {T(op?.TtftP99)} | {(op is null ? "—" : F(op.ThroughputRps))} | " +
                $"{(op?.TailRatio is { } tr ? $"{tr:0.##} ({T(op.ColdHalfTtftP99)} / {T(op.HotTenthTtftP99)})" : "—")} |");
        }
        s.AppendLine();
        s.AppendLine("## Adapter loads per 1,000 requests, by tier");
        s.AppendLine();
        s.AppendLine("host → GPU (2 ms + size / 16 GB/s), local disk → host (20 ms + size / 2 GB/s), object store → node (500 ms + size / 200 MB/s). B∞'s loads are free; they are counted all the same.");
        s.AppendLine();
        s.AppendLine("| policy | rate (req/s) | host → GPU | local disk | object store |");
        s.AppendLine("|---|---|---|---|---|");
        foreach (var rate in new[] { b.ReferenceRate, b.OperatingRate }.Distinct())
            foreach (var p in b.Policies)
                if (b.At(p.Policy, rate) is { } r)
                    s.AppendLine($"| {Label(p.Policy)} | {F(rate)} | {r.LoadsPer1000["host-to-gpu"]:0.#} | {r.LoadsPer1000["local-disk"]:0.#} | {r.LoadsPer1000["object-store"]:0.#} |");
        s.AppendLine();
        s.AppendLine("## P99 TTFT against rate (steady)");
        s.AppendLine();
        s.AppendLine("`stop` = the run was stopped once the SLO was certainly lost; rates above a policy's first failure are not run except the shared rates.");
        s.AppendLine();
        s.AppendLine("| rate (req/s) | " + string.Join(" | ", b.Policies.Select(p => Label(p.Policy))) + " |");
        s.AppendLine("|---|" + string.Join("", b.Policies.Select(_ => "---|")));
        foreach (var rate in b.SweepRates)
        {
            s.Append($"| {F(rate)} |");
            foreach (var p in b.Policies)
            {
                var r = b.At(p.Policy, rate);
                s.Append(r is null ? " — |" : r.Aborted ? " stop |" : $" {T(r.TtftP99)}{(r.MeetsSlo ? "" : " ✗")} |");
            }
            s.AppendLine();
        }
        if (b.Dynamic.Count > 0)
        {
            s.AppendLine();
            s.AppendLine($"## Dynamic scenarios at {F(b.DynamicRate ?? 0)} req/s (event at {o.EventTime:0.#} s; SLO judged per {o.RecoveryWindow:0.#} s window)");
            s.AppendLine();
            s.AppendLine("Recovery = seconds from the event until the first stretch of failing windows ends (0 = no window failed). Requests lost with an engine count at the event.");
            s.AppendLine();
            s.AppendLine("| scenario | policy | SLO met before the event | recovery (s) | windows failing after the event | hot adapter on ≥ 2 engines (s) | P99 TTFT whole run (s) |");
            s.AppendLine("|---|---|---|---|---|---|---|");
            foreach (var r in b.Dynamic)
                s.AppendLine($"| {r.Scenario} | {Label(r.Policy)} | {(r.SloMetBeforeEvent is { } m ? (m ? "yes" : "no") : "—")} | " +
                    $"{(r.RecoverySeconds is { } rs ? rs.ToString("0.#", CultureInfo.InvariantCulture) : "not restored")} | " +
                    $"{r.FailingWindowsAfterEvent} of {r.Windows.Count(w => w.Start + o.RecoveryWindow > o.EventTime)} | " +
                    $"{(r.Scenario == ScenarioNames.FlashCrowd ? T(r.FlashOnTwoEnginesSeconds) : "—")} | {T(r.TtftP99)} |");
        }
        s.AppendLine();
        s.AppendLine("## Targets (HybridServing as built, same run; without overflow loads alongside)");
        s.AppendLine();
        string Holds(bool? h) => h is { } x ? (x ? "yes" : "**no**") : "—";
        var ablation = b.Policies.Any(p => p.Policy == PolicyNames.HybridServingNoOverflow) ? Targets.Evaluate(b, PolicyNames.HybridServingNoOverflow) : null;
        s.AppendLine("| figure | target | HybridServing | holds |" + (ablation is null ? "" : " without overflow | holds |"));
        s.AppendLine("|---|---|---|---|" + (ablation is null ? "" : "---|---|"));
        var checks = Targets.Evaluate(b);
        for (var i = 0; i < checks.Count; i++)
        {
            var c = checks[i];
            s.AppendLine($"| {c.Figure} | {c.Target} | {c.Measured} | {Holds(c.Holds)} |" + (ablation is null ? "" : $" {ablation[i].Measured} | {Holds(ablation[i].Holds)} |"));
        }
        if (b.Tuning.Count > 0)
        {
            s.AppendLine();
            s.AppendLine("## Knees for other shapes (tuning matrix)");
            s.AppendLine();
            s.AppendLine("| Zipf | engines | " + string.Join(" | ", b.Policies.Select(p => Label(p.Policy))) + " | ours vs B0 | ours vs B1 | ours vs B∞ |");
            s.AppendLine("|---|---|" + string.Join("", b.Policies.Select(_ => "---|")) + "---|---|---|");
            foreach (var t in b.Tuning)
            {
                double K(string p) => t.Knees.TryGetValue(p, out var v) ? v : double.NaN;
                var ours = K(PolicyNames.HybridServing);
                s.AppendLine($"| {t.Zipf} | {t.Engines} | " + string.Join(" | ", b.Policies.Select(p => F(K(p.Policy)))) +
                    $" | {R(ours, K(PolicyNames.B0))} | {R(ours, K(PolicyNames.B1))} | {R(ours, K(PolicyNames.BInfinity))} |");
            }
        }
        s.AppendLine();
        s.AppendLine("Charts: `p99-ttft-vs-rate.png`, `loads-by-tier.png`. Machine-readable: `results.json`.");
        return s.ToString();
    }

    public static string Label(string policy) => policy switch
    {
        PolicyNames.BInfinity => "B∞",
        PolicyNames.HybridServingNoOverflow => "HybridServing without overflow",
        _ => policy,
    };
}
