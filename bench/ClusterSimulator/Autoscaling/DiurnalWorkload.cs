using HybridServing.ClusterSimulator.Workload;

namespace HybridServing.ClusterSimulator.Autoscaling;

/// <summary>The day's arrivals, and which adapter the flash crowd is for.</summary>
internal sealed record DiurnalTrace(IReadOnlyList<Arrival> Arrivals, int FlashAdapter);

/// <summary>
/// A compressed day: a quiet night until 15 % of the day, a smooth rise to the peak (sin²) at the middle
/// of the day, a fall to the night again at 90 %; a flash crowd on top (one adapter that is cold before:
/// the 90th percentile of popularity). Poisson arrivals by thinning at the highest rate; separate seeded
/// streams for times, adapters and lengths, so every policy sees the same requests.
/// </summary>
internal static class DiurnalWorkload
{
    public const double NightEnds = 0.15;
    public const double NightStarts = 0.9;

    /// <summary>The arrival rate of the day's profile at <paramref name="t"/> (flash crowd excluded).</summary>
    public static double DayRate(AutoscaleOptions o, double t)
    {
        var f = t / o.Day;
        if (f < NightEnds || f >= NightStarts) return o.NightRate;
        var s = Math.Sin(Math.PI * (f - NightEnds) / (NightStarts - NightEnds));
        return o.NightRate + (o.PeakRate - o.NightRate) * s * s;
    }

    public static double FlashRate(AutoscaleOptions o, double t)
    {
        var start = o.FlashAt * o.Day;
        return t >= start && t < start + o.FlashSeconds ? o.FlashRate : 0;
    }

    public static DiurnalTrace Generate(AutoscaleOptions o, AdapterCatalog catalog)
    {
        var c = o.Cluster;
        var times = new Random(Seeds.Derive(c.Seed, 11));
        var accept = new Random(Seeds.Derive(c.Seed, 12));
        var picks = new Random(Seeds.Derive(c.Seed, 13));
        var lengths = new Random(Seeds.Derive(c.Seed, 14));
        var zipf = new ZipfDistribution(catalog.Count, c.ZipfExponent);
        var flash = catalog.ByPopularity[(int)(0.9 * (catalog.Count - 1))];
        var max = Math.Max(o.PeakRate, o.NightRate) + o.FlashRate;
        var arrivals = new List<Arrival>();
        double t = 0;
        var id = 0;
        while (true)
        {
            t += -Math.Log(1 - times.NextDouble()) / max;
            if (t >= o.Day) break;
            var day = DayRate(o, t);
            var burst = FlashRate(o, t);
            var u = accept.NextDouble() * max;
            if (u >= day + burst) continue;
            // A fixed number of draws per accepted request on each stream.
            var popularity = zipf.Sample(picks.NextDouble());
            var adapter = u < burst ? flash : catalog.ByPopularity[popularity];
            var prompt = (int)Math.Clamp(Math.Round(Sampling.LogNormal(lengths, c.PromptMean, WorkloadGenerator.LengthSigma)), 1, WorkloadGenerator.MaxPromptTokens);
            var output = (int)Math.Clamp(Math.Round(Sampling.LogNormal(lengths, c.OutputMean, WorkloadGenerator.LengthSigma)), 2, WorkloadGenerator.MaxOutputTokens);
            arrivals.Add(new Arrival(id++, t, adapter, prompt, output));
        }
        return new DiurnalTrace(arrivals, flash);
    }
}
