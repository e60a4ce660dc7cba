using System.Globalization;
using HybridServing.ClusterSimulator.Configuration;
using HybridServing.MockEngine.Performance;
using static HybridServing.ClusterSimulator.Configuration.OptionParser;

namespace HybridServing.ClusterSimulator.Autoscaling;

/// <summary>The autoscaling experiment's policies: static at peak, HPA-style, KPA without the LoRA signal, ours.</summary>
internal static class ScalingPolicyNames
{
    public const string Static = "static";
    public const string Hpa = "hpa";
    public const string Kpa = "kpa";
    public const string Ours = "ours";
    public static readonly IReadOnlyList<string> All = [Static, Hpa, Kpa, Ours];
}

/// <summary>
/// The autoscaling experiment: a compressed diurnal day with a flash crowd and a quiet
/// night on a pool of at most <c>Cluster.Engines</c> engines. Every knob is a flag of <c>autoscale</c>.
/// </summary>
internal sealed record AutoscaleOptions
{
    /// <summary>Engines, adapters, Zipf, lengths, SLO, seed: the cluster simulator's own options (16 engines, 1,000 adapters, Zipf 1.0).</summary>
    public SimulationOptions Cluster { get; init; } = new() { Output = Path.Combine("bench", "results", "local", "autoscale") };
    /// <summary>Virtual seconds of the compressed day (night, morning ramp, peak, evening, night).</summary>
    public double Day { get; init; } = 3600;
    /// <summary>Arrival rate at the day's peak, requests/s (the flash crowd comes on top).</summary>
    public double PeakRate { get; init; } = 40;
    /// <summary>Arrival rate of the quiet night, requests/s.</summary>
    public double NightRate { get; init; } = 0.005;
    /// <summary>Extra rate of the flash crowd (all of it for one adapter that is cold before).</summary>
    public double FlashRate { get; init; } = 12;
    /// <summary>When the flash crowd starts, as a fraction of the day, and how long it lasts (virtual seconds).</summary>
    public double FlashAt { get; init; } = 0.35;
    public double FlashSeconds { get; init; } = 120;
    /// <summary>Seconds one engine takes to wake from sleep level 1 (default: the MockEngine's model, weights host → GPU).</summary>
    public double WakeSeconds { get; init; } = PerformanceProfile.H100Llama3_8B.HostToGpu.SecondsFor(PerformanceProfile.H100Llama3_8B.WeightBytes);
    /// <summary>Autoscaler:Interval (product default 2 s).</summary>
    public double Interval { get; init; } = 2;
    /// <summary>HPA's sync period (Kubernetes default 15 s).</summary>
    public double HpaSync { get; init; } = 15;
    /// <summary>HPA's scale-down stabilization window (Kubernetes default 300 s).</summary>
    public double HpaStabilization { get; init; } = 300;
    /// <summary>Concurrency per engine every autoscaled policy aims at (null: the Autoscaler's default).</summary>
    public double? TargetConcurrency { get; init; }
    /// <summary>Gateway:ColdStart:Timeout: how long the gateway holds a request while no engine is awake.</summary>
    public double HoldTimeout { get; init; } = 30;
    /// <summary>The Sleep actuator's DrainTimeout.</summary>
    public double DrainTimeout { get; init; } = 60;
    /// <summary>Seconds per point of the engines-over-time series.</summary>
    public double SampleEvery { get; init; } = 10;
    public IReadOnlyList<string> Policies { get; init; } = ScalingPolicyNames.All;

    public string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"{Cluster.Adapters} adapters (Zipf {Cluster.ZipfExponent}), at most {Cluster.Engines} engines (max_loras {Cluster.MaxLoras}), " +
        $"a {Day} s day peaking at {PeakRate} req/s, night {NightRate} req/s, flash crowd +{FlashRate} req/s for {FlashSeconds} s at {FlashAt * 100:0.#} % of the day, " +
        $"level-1 wake {WakeSeconds:0.###} s, autoscaler every {Interval} s, HPA every {HpaSync} s ({HpaStabilization} s stabilization), seed {Cluster.Seed}");
}

/// <summary>Parses the flags after <c>autoscale</c>; a wrong value stops before any simulation, naming the flag.</summary>
internal static class AutoscaleCommandLine
{
    public const string Command = "autoscale";

    private static readonly OptionFlag<AutoscaleOptions>[] Flags =
    [
        new("--engines", "most engines in the pool, and static's count (default 16)", (o, v) => o with { Cluster = o.Cluster with { Engines = Int(v, "--engines", 1, 4096) } }),
        new("--adapters", "number of adapters (default 1000)", (o, v) => o with { Cluster = o.Cluster with { Adapters = Int(v, "--adapters", 1, 1_000_000) } }),
        new("--zipf", "Zipf exponent of adapter popularity (default 1.0)", (o, v) => o with { Cluster = o.Cluster with { ZipfExponent = Double(v, "--zipf", 0, 10) } }),
        new("--max-loras", "GPU LoRA slots per engine (default 8)", (o, v) => o with { Cluster = o.Cluster with { MaxLoras = Int(v, "--max-loras", 1, 4096) } }),
        new("--seed", "random seed (default 1)", (o, v) => o with { Cluster = o.Cluster with { Seed = Int(v, "--seed", int.MinValue, int.MaxValue) } }),
        new("--day", "virtual seconds of the compressed day (default 3600)", (o, v) => o with { Day = Double(v, "--day", 60, 1_000_000) }),
        new("--peak-rate", "requests/s at the day's peak (default 40)", (o, v) => o with { PeakRate = Double(v, "--peak-rate", 0.01, 1e6) }),
        new("--night-rate", "requests/s during the quiet night (default 0.005: one request every 200 s)", (o, v) => o with { NightRate = Double(v, "--night-rate", 0, 1e6) }),
        new("--flash-rate", "extra requests/s of the flash crowd, all for one cold adapter (default 12; 0 = none)", (o, v) => o with { FlashRate = Double(v, "--flash-rate", 0, 1e6) }),
        new("--flash-at", "start of the flash crowd as a fraction of the day (default 0.35)", (o, v) => o with { FlashAt = Double(v, "--flash-at", 0, 1) }),
        new("--flash-seconds", "length of the flash crowd in virtual seconds (default 120)", (o, v) => o with { FlashSeconds = Double(v, "--flash-seconds", 0, 1_000_000) }),
        new("--wake-seconds", "seconds to wake one engine (default: the model's sleep level 1 wake; e.g. 60 for a cold start)", (o, v) => o with { WakeSeconds = Double(v, "--wake-seconds", 0, 3600) }),
        new("--interval", "Autoscaler:Interval in seconds (default 2)", (o, v) => o with { Interval = Double(v, "--interval", 0.1, 600) }),
        new("--hpa-sync", "HPA sync period in seconds (default 15)", (o, v) => o with { HpaSync = Double(v, "--hpa-sync", 0.1, 600) }),
        new("--hpa-stabilization", "HPA scale-down stabilization in seconds (default 300)", (o, v) => o with { HpaStabilization = Double(v, "--hpa-stabilization", 0, 86_400) }),
        new("--target-concurrency", "running + waiting requests per engine the autoscaled policies aim at (default: the Autoscaler's TargetConcurrencyPerEngine)", (o, v) => o with { TargetConcurrency = Double(v, "--target-concurrency", 0.1, 100_000) }),
        new("--hold-timeout", "Gateway:ColdStart:Timeout in seconds (default 30)", (o, v) => o with { HoldTimeout = Double(v, "--hold-timeout", 0, 3600) }),
        new("--policies", "comma-separated: static, hpa, kpa, ours, or all (default all)", (o, v) => o with { Policies = Choice(v, "--policies", ScalingPolicyNames.All) }),
        new("--out", "output directory (default bench/results/local/autoscale, git-ignored; with --record bench/results/autoscale)", (o, v) => o with { Cluster = o.Cluster with { Output = NonEmpty(v, "--out") } }),
        new("--parallelism", "simulations run at once (default: processor count)", (o, v) => o with { Cluster = o.Cluster with { Parallelism = Int(v, "--parallelism", 1, 256) } }),
    ];

    public static string Help => OptionParser.Help("bench/ClusterSimulator", Flags).Replace("-- [options]", $"-- {Command} [options]", StringComparison.Ordinal);

    /// <summary>Null when --help was asked for.</summary>
    public static AutoscaleOptions? Parse(IReadOnlyList<string> args)
    {
        if (OptionParser.Parse(args, new AutoscaleOptions(), Flags) is not { } o) return null;
        if (o.FlashRate > 0 && o.FlashAt * o.Day + o.FlashSeconds > o.Day)
            throw new OptionException($"--flash-seconds: the flash crowd ({Show(o.FlashSeconds)} s from {Show(o.FlashAt * o.Day)} s) must end within the day ({Show(o.Day)} s).");
        return o;
    }
}
