using HybridServing.ClusterSimulator.Configuration;

namespace HybridServing.ClusterSimulator.Workload;

/// <summary>One request of the workload (virtual seconds from the start of the run).</summary>
internal readonly record struct Arrival(int Id, double Time, int Adapter, int PromptTokens, int OutputTokens);

/// <summary>The arrivals of one run and the scenario's event, if any.</summary>
internal sealed record WorkloadTrace(string Scenario, double Rate, IReadOnlyList<Arrival> Arrivals, double? EventTime, int? FlashAdapter);

/// <summary>
/// Builds the request trace for (scenario, rate). Separate seeded streams for gaps, adapters and
/// lengths, each consuming a fixed number of draws per request, so request i has the same adapter
/// and lengths at every rate (common random numbers: a rate sweep compares like with like, and the
/// knee search sees a monotone workload).
/// </summary>
internal static class WorkloadGenerator
{
    public const double FlashShare = 0.2;
    /// <summary>Log-space spread of lengths: chat traffic has a long right tail.</summary>
    public const double LengthSigma = 0.8;
    public const int MaxPromptTokens = 8192;
    public const int MaxOutputTokens = 2048;

    public static WorkloadTrace Generate(SimulationOptions options, AdapterCatalog catalog, string scenario, double rate)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rate);
        var gaps = new Random(Seeds.Derive(options.Seed, 1));
        var picks = new Random(Seeds.Derive(options.Seed, 2));
        var lengths = new Random(Seeds.Derive(options.Seed, 3));
        var zipf = new ZipfDistribution(catalog.Count, options.ZipfExponent);
        var shape = 1 / (options.ArrivalCv * options.ArrivalCv);
        var eventTime = scenario == ScenarioNames.Steady ? (double?)null : options.EventTime;
        // The flash adapter is cold in steady state (90th percentile of popularity).
        int? flash = scenario == ScenarioNames.FlashCrowd ? catalog.ByPopularity[(int)(0.9 * (catalog.Count - 1))] : null;
        // Drift: the popularity ranking moves by half the catalogue, so the new hot set was lukewarm before.
        var driftShift = catalog.Count / 2;

        var arrivals = new List<Arrival>((int)(rate * options.Duration * 1.1) + 16);
        double t = 0;
        for (var id = 0; ; id++)
        {
            // Unit-mean Gamma gap scaled by 1/rate: the same shape at every rate.
            t += Sampling.Gamma(gaps, shape, 1 / shape) / rate;
            if (t >= options.Duration) break;
            var popularity = zipf.Sample(picks.NextDouble());
            var flashDraw = picks.NextDouble();
            var after = eventTime is { } e && t >= e;
            var rank = scenario == ScenarioNames.Drift && after ? (popularity + driftShift) % catalog.Count : popularity;
            var adapter = catalog.ByPopularity[rank];
            if (flash is { } f && after && flashDraw < FlashShare) adapter = f;
            var prompt = (int)Math.Clamp(Math.Round(Sampling.LogNormal(lengths, options.PromptMean, LengthSigma)), 1, MaxPromptTokens);
            var output = (int)Math.Clamp(Math.Round(Sampling.LogNormal(lengths, options.OutputMean, LengthSigma)), 2, MaxOutputTokens);
            arrivals.Add(new Arrival(id, t, adapter, prompt, output));
        }
        return new WorkloadTrace(scenario, rate, arrivals, eventTime, flash);
    }
}
