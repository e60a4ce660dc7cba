using System.Globalization;
using HybridServing.ClusterSimulator.Configuration;

namespace HybridServing.LiveValidation.Configuration;

/// <summary>
/// The shared configuration of both sides. Durations and intervals are in virtual (model) seconds,
/// as the simulator counts them; the live stack runs them <see cref="TimeScale"/> times faster on
/// the wall clock, so every live interval is the virtual one divided by the time scale.
/// </summary>
internal sealed record ValidationOptions
{
    public static readonly IReadOnlyList<string> AllPolicies = [PolicyNames.B0, PolicyNames.B1, PolicyNames.B2, PolicyNames.HybridServing, PolicyNames.HybridServingNoOverflow];

    public int Engines { get; init; } = 4;
    public int Adapters { get; init; } = 60;
    public double ZipfExponent { get; init; } = 1.0;
    public int MaxLoras { get; init; } = 2;
    public int MaxCpuLoras { get; init; } = 16;
    public double PromptMean { get; init; } = 256;
    public double OutputMean { get; init; } = 32;
    /// <summary>Model seconds per wall second on the live side (MockEngine <c>--mock-time-scale</c>).</summary>
    public double TimeScale { get; init; } = 4;
    public IReadOnlyList<double> Rates { get; init; } = [12, 18, 24];
    public double Duration { get; init; } = 60;
    public double Warmup { get; init; } = 15;
    public int Seed { get; init; } = 1;
    public IReadOnlyList<string> Policies { get; init; } = AllPolicies;
    /// <summary><c>ControlPlane:RatePerReplica</c> in requests per virtual second (the live value is this × the time scale).</summary>
    public double RatePerReplica { get; init; } = 1;
    public double ReportInterval { get; init; } = 4;
    public double DemandWindow { get; init; } = 10;
    public double ControlInterval { get; init; } = 30;
    /// <summary>
    /// Wall seconds the live control path takes for an overflow load (gateway RequestLoad → control plane
    /// pass → sidecar load → routing table → gateway): not compressed by the time scale, so the simulator
    /// is charged this × the time scale. Measured here: 87–107 ms mean (each run's report shows its own).
    /// </summary>
    public double OverflowLatency { get; init; } = 0.09;
    /// <summary>Relative part of the TTFT tolerance: live within ± this share of the simulated figure…</summary>
    public double Tolerance { get; init; } = 0.35;
    /// <summary>…or within this many virtual seconds, whichever is larger (the live stack's own overhead floor).</summary>
    public double ToleranceFloor { get; init; } = 0.05;
    public string Output { get; init; } = Path.Combine("bench", "results", "local", "live-validation");
    /// <summary>Where the generated PEFT adapters, manifests and component logs go.</summary>
    public string WorkDirectory { get; init; } = Path.Combine(Path.GetTempPath(), "hybridserving-live-validation");

    /// <summary>The gateway's engine scrape interval (the product default), in wall seconds.</summary>
    public const double LiveScrapeSeconds = 0.05;

    /// <summary>A virtual duration on the live stack's wall clock.</summary>
    public TimeSpan Wall(double virtualSeconds) => TimeSpan.FromSeconds(virtualSeconds / TimeScale);

    public string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"{Engines} engines, {Adapters} adapters, Zipf {ZipfExponent}, max_loras {MaxLoras}, max_cpu_loras {MaxCpuLoras}, " +
        $"prompt/output mean {PromptMean}/{OutputMean} tokens, rates {string.Join(", ", Rates)} req/s, {Duration} s runs ({Warmup} s warm-up), " +
        $"seed {Seed}, time scale {TimeScale}; HybridServing: replicas all, {RatePerReplica} req/s per replica, demand reported every {ReportInterval} s " +
        $"over a {DemandWindow} s window, resync every {ControlInterval} s (virtual seconds)");
}
