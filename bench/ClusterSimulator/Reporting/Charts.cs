using HybridServing.ClusterSimulator.Experiments;
using ScottPlot;

namespace HybridServing.ClusterSimulator.Reporting;

/// <summary>PNG charts with ScottPlot: P99 TTFT against rate per policy; adapter loads by tier.</summary>
internal static class Charts
{
    public static void P99TtftVsRate(BenchmarkOutcome b, string path)
    {
        var cap = 10 * b.Options.SloTtft;
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        var i = 0;
        foreach (var p in b.Policies)
        {
            var runs = b.Sweep.Where(r => r.Policy == p.Policy).OrderBy(r => r.Rate).ToArray();
            if (runs.Length == 0) continue;
            // Measured runs make the line (values beyond the cap drawn at the cap); runs stopped once
            // the SLO was certainly lost have no P99 and are drawn as markers at the cap.
            var color = palette.GetColor(i++);
            var measured = runs.Where(r => !r.Aborted).ToArray();
            var line = plot.Add.Scatter(measured.Select(r => r.Rate).ToArray(), measured.Select(r => Math.Min(cap, r.TtftP99)).ToArray(), color);
            line.LegendText = MarkdownReport.Label(p.Policy);
            line.LineWidth = 2;
            line.MarkerSize = 7;
            var stopped = runs.Where(r => r.Aborted).ToArray();
            if (stopped.Length > 0)
            {
                var marks = plot.Add.Scatter(stopped.Select(r => r.Rate).ToArray(), stopped.Select(_ => cap).ToArray(), color);
                marks.LineWidth = 0;
                marks.MarkerSize = 10;
                marks.MarkerShape = MarkerShape.Eks;
            }
        }
        var slo = plot.Add.HorizontalLine(b.Options.SloTtft);
        slo.LinePattern = LinePattern.Dashed;
        slo.LegendText = $"SLO {b.Options.SloTtft} s";
        plot.Title($"P99 TTFT vs arrival rate ({b.Options.Engines} engines, {b.Options.Adapters} adapters, Zipf {b.Options.ZipfExponent}); × = stopped, SLO lost");
        plot.XLabel("arrival rate (requests/s)");
        plot.YLabel("P99 time to first token (s)");
        plot.Axes.SetLimitsY(0, cap * 1.05);
        plot.ShowLegend(Alignment.MiddleRight);
        plot.SavePng(path, 1000, 600);
    }

    public static void LoadsByTier(BenchmarkOutcome b, string path)
    {
        string[] tiers = ["host-to-gpu", "local-disk", "object-store"];
        string[] names = ["host → GPU", "local disk", "object store"];
        var palette = new ScottPlot.Palettes.Category10();
        var plot = new Plot();
        var bars = new List<Bar>();
        var ticks = new List<Tick>();
        var position = 0.0;
        foreach (var p in b.Policies)
        {
            if (b.At(p.Policy, b.ReferenceRate) is not { } r) continue;
            for (var t = 0; t < tiers.Length; t++)
                bars.Add(new Bar { Position = position + t, Value = r.LoadsPer1000[tiers[t]], FillColor = palette.GetColor(t) });
            ticks.Add(new Tick(position + 1, MarkdownReport.Label(p.Policy)));
            position += tiers.Length + 1;
        }
        plot.Add.Bars(bars);
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual([.. ticks]);
        for (var t = 0; t < tiers.Length; t++)
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = names[t], FillColor = palette.GetColor(t) });
        plot.ShowLegend(Alignment.UpperRight);
        plot.Title($"Adapter loads per 1,000 requests by tier at {b.ReferenceRate:0.#} req/s (0.8 × B0's knee)");
        plot.YLabel("loads per 1,000 requests");
        plot.Axes.Margins(bottom: 0);
        plot.SavePng(path, 1000, 600);
    }
}
