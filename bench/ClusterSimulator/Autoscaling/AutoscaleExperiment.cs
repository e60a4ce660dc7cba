using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using HybridServing.ClusterSimulator.Workload;
using ScottPlot;

namespace HybridServing.ClusterSimulator.Autoscaling;

/// <summary>Every scaling policy on the same day, in parallel; the table, results.json and the chart.</summary>
internal sealed record AutoscaleOutcome(AutoscaleOptions Options, IReadOnlyList<AutoscaleResult> Results, int Requests, double WallSeconds)
{
    public AutoscaleResult? Of(string policy) => Results.FirstOrDefault(r => r.Policy == policy);
}

internal static class AutoscaleExperiment
{
    /// <summary>The target: within this many points of static's SLO attainment…</summary>
    public const double SloPointsBehindStatic = 1;
    /// <summary>…at no more than this share of its engine-hours.</summary>
    public const double EngineHoursShareOfStatic = 0.6;

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static AutoscaleOutcome Run(AutoscaleOptions o, TextWriter log)
    {
        var wall = Stopwatch.StartNew();
        var catalog = new AdapterCatalog(o.Cluster);
        var trace = DiurnalWorkload.Generate(o, catalog);
        log.WriteLine($"{trace.Arrivals.Count} requests over the day");
        var results = new AutoscaleResult[o.Policies.Count];
        Parallel.For(0, o.Policies.Count, new ParallelOptions { MaxDegreeOfParallelism = o.Cluster.Parallelism }, i =>
        {
            results[i] = AutoscaleRun.Execute(o, catalog, trace, o.Policies[i]);
            lock (log) log.WriteLine($"  {o.Policies[i]}: SLO {results[i].SloAttainment * 100:0.00} %, {results[i].EngineHours:0.00} engine-hours ({results[i].WallSeconds:0} s)");
        });
        return new AutoscaleOutcome(o, results, trace.Arrivals.Count, wall.Elapsed.TotalSeconds);
    }

    public static void Write(AutoscaleOutcome outcome, string command)
    {
        var dir = outcome.Options.Cluster.Output;
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "results.md"), Markdown(outcome, command));
        File.WriteAllText(Path.Combine(dir, "results.json"), JsonSerializer.Serialize(new
        {
            benchmark = "the Autoscaler in the cluster simulator (virtual time)",
            command,
            setup = outcome.Options.Describe(),
            requests = outcome.Requests,
            sloTtftSeconds = outcome.Options.Cluster.SloTtft,
            sloTpotSeconds = outcome.Options.Cluster.SloTpot,
            wallSeconds = outcome.WallSeconds,
            policies = outcome.Results,
            targets = Targets(outcome).Select(t => new { figure = t.Figure, target = t.Target, value = t.Value, holds = t.Holds }),
        }, Json));
        Chart(outcome, Path.Combine(dir, "engines-over-time.png"));
    }

    public static IReadOnlyList<(string Figure, string Target, string Value, bool Holds)> Targets(AutoscaleOutcome b)
    {
        var list = new List<(string, string, string, bool)>();
        if (b.Of(ScalingPolicyNames.Static) is not { } s || b.Of(ScalingPolicyNames.Ours) is not { } ours) return list;
        var behind = (s.SloAttainment - ours.SloAttainment) * 100;
        list.Add(("ours: SLO attainment vs static", $"≥ static − {SloPointsBehindStatic} point", F($"{ours.SloAttainment * 100:0.00} % vs {s.SloAttainment * 100:0.00} % ({-behind:+0.00;-0.00} points)"), behind <= SloPointsBehindStatic));
        var share = s.EngineHours > 0 ? ours.EngineHours / s.EngineHours : 0;
        list.Add(("ours: engine-hours vs static", $"≤ {EngineHoursShareOfStatic}×", F($"{share:0.00}× ({ours.EngineHours:0.00} vs {s.EngineHours:0.00})"), share <= EngineHoursShareOfStatic));
        if (b.Of(ScalingPolicyNames.Hpa) is { } h)
        {
            list.Add(("ours vs HPA-style: SLO attainment", "higher", F($"{ours.SloAttainment * 100:0.00} % vs {h.SloAttainment * 100:0.00} %"), ours.SloAttainment > h.SloAttainment));
            list.Add(("ours vs HPA-style: engine-hours", "fewer", F($"{ours.EngineHours:0.00} vs {h.EngineHours:0.00}"), ours.EngineHours < h.EngineHours));
        }
        return list;
    }

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    public static string Markdown(AutoscaleOutcome b, string command)
    {
        var o = b.Options;
        var sb = new StringBuilder();
        sb.AppendLine("# Autoscaling in the cluster simulator").AppendLine();
        sb.AppendLine(F($"`{command}` — {o.Describe()}; {b.Requests} requests; wall {b.WallSeconds:0} s.")).AppendLine();
        sb.AppendLine(F($"SLO attainment = share of requests with TTFT ≤ {o.Cluster.SloTtft} s and TPOT ≤ {o.Cluster.SloTpot * 1000:0} ms (rejected and unfinished requests fail). Engine-hours: engines awake, waking or draining, in virtual hours of the {o.Day} s day.")).AppendLine();
        sb.AppendLine("| policy | SLO attainment | P99 TTFT (s) | P99 TPOT (ms) | engine-hours | × static | engines min–max | wakes / sleeps | rejected (night) | night requests held |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|");
        var s = b.Of(ScalingPolicyNames.Static);
        foreach (var r in b.Results)
            sb.AppendLine(F($"| {r.Policy} | {r.SloAttainment * 100:0.00} % | {r.TtftP99:0.###} | {r.TpotP99 * 1000:0.#} | {r.EngineHours:0.00} | {(s is null || s.EngineHours == 0 ? "—" : (r.EngineHours / s.EngineHours).ToString("0.00", CultureInfo.InvariantCulture))} | {r.MinEngines}–{r.MaxEngines} | {r.Wakes} / {r.Sleeps} | {r.Rejected} ({r.RejectedAtNight}) | {r.HeldAtNight} of {r.NightRequests} |"));
        sb.AppendLine();
        foreach (var r in b.Results) sb.AppendLine($"- **{r.Policy}**: {r.Description}; decisions by reason: {string.Join(", ", r.DecisionReasons.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key} {kv.Value}"))}");
        var targets = Targets(b);
        if (targets.Count > 0)
        {
            sb.AppendLine().AppendLine("| target | asked | value | holds |").AppendLine("|---|---|---|---|");
            foreach (var t in targets) sb.AppendLine($"| {t.Figure} | {t.Target} | {t.Value} | {(t.Holds ? "yes" : "**no**")} |");
        }
        sb.AppendLine().AppendLine("![engines over time](engines-over-time.png)");
        return sb.ToString();
    }

    /// <summary>Engines not asleep per policy over the day (left axis) against the arrival rate (right axis).</summary>
    public static void Chart(AutoscaleOutcome b, string path)
    {
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        var i = 0;
        foreach (var r in b.Results)
        {
            var line = plot.Add.Scatter(r.Series.Select(p => p.Time / 60).ToArray(), r.Series.Select(p => (double)p.Engines).ToArray(), palette.GetColor(i++));
            line.LegendText = r.Policy;
            line.LineWidth = 2;
            line.MarkerSize = 0;
            line.ConnectStyle = ConnectStyle.StepHorizontal;
        }
        if (b.Results.Count > 0)
        {
            var load = b.Results[0].Series;
            var rate = plot.Add.Scatter(load.Select(p => p.Time / 60).ToArray(), load.Select(p => p.ArrivalRate).ToArray(), Colors.Gray.WithAlpha(0.6));
            rate.LegendText = "arrival rate (req/s, right axis)";
            rate.MarkerSize = 0;
            rate.Axes.YAxis = plot.Axes.Right;
            plot.Axes.Right.Label.Text = "arrival rate (requests/s)";
        }
        plot.Title(F($"Engines over a compressed day ({b.Options.Day / 60:0} min): {b.Options.Cluster.Engines} engines max, {b.Options.Cluster.Adapters} adapters"));
        plot.XLabel("virtual minutes");
        plot.YLabel("engines awake, waking or draining");
        plot.ShowLegend(Alignment.UpperLeft);
        plot.SavePng(path, 1200, 600);
    }
}
