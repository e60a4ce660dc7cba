using System.Globalization;
using HybridServing.Contracts.Resources;
using static HybridServing.ClusterSimulator.Configuration.OptionParser;

namespace HybridServing.ClusterSimulator.Configuration;

/// <summary>
/// Parses <c>--flag value</c> / <c>--flag=value</c>. Every option is validated here so a wrong
/// value stops the run before any simulation with a message naming the flag.
/// </summary>
internal static class CommandLine
{
    private static readonly OptionFlag<SimulationOptions>[] Flags =
    [
        new("--adapters", "number of adapters N (default 1000)", (o, v) => o with { Adapters = Int(v, "--adapters", 1, 1_000_000) }),
        new("--engines", "number of engines M (default 16)", (o, v) => o with { Engines = Int(v, "--engines", 1, 4096) }),
        new("--zipf", "Zipf exponent of adapter popularity (default 1.0; 0 = uniform)", (o, v) => o with { ZipfExponent = Double(v, "--zipf", 0, 10) }),
        new("--rank-mix", "rank:percent list (default 8:40,16:30,32:20,64:10)", (o, v) => o with { RankMix = RankMix(v) }),
        new("--mb-per-rank", "adapter megabytes per unit of rank (default 5.2)", (o, v) => o with { MegabytesPerRank = Double(v, "--mb-per-rank", 0.001, 10_000) }),
        new("--max-loras", "GPU LoRA slots per engine (default 8)", (o, v) => o with { MaxLoras = Int(v, "--max-loras", 1, 4096) }),
        new("--max-cpu-loras", "host-memory LoRA cache per engine (default 64)", (o, v) => o with { MaxCpuLoras = Int(v, "--max-cpu-loras", 1, 100_000) }),
        new("--max-num-seqs", "max running sequences per engine (default 256)", (o, v) => o with { MaxNumSeqs = Int(v, "--max-num-seqs", 1, 65_536) }),
        new("--arrival-cv", "coefficient of variation of inter-arrival times (default 1; 4 = bursty)", (o, v) => o with { ArrivalCv = Double(v, "--arrival-cv", 0.05, 100) }),
        new("--rate", "one fixed arrival rate in requests/s for the latency sweep", (o, v) => o with { Rates = [Double(v, "--rate", 0.001, 1e7)] }),
        new("--rates", "comma-separated fixed rates for the latency sweep (default: derived from the knees)", (o, v) => o with { Rates = DoubleList(v, "--rates", 0.001, 1e7) }),
        new("--knee-tolerance", "relative width at which the knee search stops (default 0.05)", (o, v) => o with { KneeTolerance = Double(v, "--knee-tolerance", 0.005, 0.5) }),
        new("--duration", "virtual seconds of arrivals per run, warm-up included (default 60)", (o, v) => o with { Duration = Double(v, "--duration", 1, 100_000) }),
        new("--warmup", "virtual seconds not measured at the start (default 15)", (o, v) => o with { Warmup = Double(v, "--warmup", 0, 100_000) }),
        new("--event-at", "virtual second of the dynamic scenarios' event (default: a quarter into the measured window)", (o, v) => o with { EventAt = Double(v, "--event-at", 0, 100_000) }),
        new("--seed", "random seed; the same seed gives the same results (default 1)", (o, v) => o with { Seed = Int(v, "--seed", int.MinValue, int.MaxValue) }),
        new("--scenario", "comma-separated: steady, flash-crowd, drift, engine-lost, or all (default all)", (o, v) => o with { Scenarios = Choice(v, "--scenario", SimulationOptions.AllScenarios) }),
        new("--policies", "comma-separated: B0, B1, B2, HybridServing, Binf, HybridServing-no-overflow (ablation), or all (default all)", (o, v) => o with { Policies = Choice(v, "--policies", SimulationOptions.AllPolicies) }),
        new("--prompt-mean", "mean prompt tokens (default 1000)", (o, v) => o with { PromptMean = Double(v, "--prompt-mean", 1, 100_000) }),
        new("--output-mean", "mean output tokens (default 250)", (o, v) => o with { OutputMean = Double(v, "--output-mean", 2, 100_000) }),
        new("--control-interval", "seconds between the control plane's periodic re-plans (ControlPlane:ResyncInterval; default 30, the product's); it also re-plans when a demand report changes an adapter's replicas", (o, v) => o with { ControlInterval = Double(v, "--control-interval", 0.01, 3600) }),
        new("--demand-window", "ControlPlane:DemandWindow, seconds of reported requests behind each rate (default 10; the product's 60 is longer than a run)", (o, v) => o with { DemandWindow = Double(v, "--demand-window", 0.1, 3600) }),
        new("--report-interval", "Gateway:Demand:ReportInterval, seconds between demand reports (default 5, the product's; 0 = no reports)", (o, v) => o with { ReportInterval = Double(v, "--report-interval", 0, 3600) }),
        new("--rate-per-replica", "ControlPlane:RatePerReplica, requests/s one replica should take (default 5, the product's)", (o, v) => o with { RatePerReplica = Double(v, "--rate-per-replica", 0.001, 1e6) }),
        new("--replicas", "every adapter's spec.deploymentConfig.replicas: all (min 1, every engine), MIN:MAX (1-1000), or none (not given: one engine) (default all)", (o, v) => o with { Replicas = Replicas(v) }),
        new("--overflow-extra-slots", "ControlPlane:Overflow:ExtraSlotsPerEngine, adapters an engine may hold beyond its host slots for overflow loads (default: the product's)", (o, v) => o with { OverflowExtraSlots = Int(v, "--overflow-extra-slots", 0, 100_000) }),
        new("--overflow-grant-ttl", "ControlPlane:Overflow:GrantTtl in seconds (default: the product's)", (o, v) => o with { OverflowGrantTtl = Double(v, "--overflow-grant-ttl", 0.1, 86_400) }),
        new("--overflow-headroom", "Gateway:Picking:Overflow:FreeSlotHeadroom, free GPU slots an overflow target keeps (default: the product's)", (o, v) => o with { OverflowHeadroom = Int(v, "--overflow-headroom", 0, 4096) }),
        new("--overflow-max-queue", "Gateway:Picking:Overflow:MaxQueueDepth, waiting requests an overflow target may have (default: the product's)", (o, v) => o with { OverflowMaxQueue = Int(v, "--overflow-max-queue", 0, 1_000_000) }),
        new("--overflow-latency", "seconds from an overflow grant to the adapter being usable on the engine (the control path; default 0.1)", (o, v) => o with { OverflowLatency = Double(v, "--overflow-latency", 0, 60) }),
        new("--scrape-interval", "seconds between gateway scrapes of engine metrics (default 0.05)", (o, v) => o with { ScrapeInterval = Double(v, "--scrape-interval", 0.001, 60) }),
        new("--slo-ttft", "P99 time-to-first-token objective in seconds (default 2)", (o, v) => o with { SloTtft = Double(v, "--slo-ttft", 0.001, 3600) }),
        new("--slo-tpot", "P99 time-per-output-token objective in seconds (default 0.1)", (o, v) => o with { SloTpot = Double(v, "--slo-tpot", 0.0001, 60) }),
        new("--dynamic-rate", "arrival rate of the dynamic scenarios (default 0.8 x HybridServing's knee)", (o, v) => o with { DynamicRate = Double(v, "--dynamic-rate", 0.001, 1e7) }),
        new("--recovery-window", "seconds per window when judging SLO recovery (default 5)", (o, v) => o with { RecoveryWindow = Double(v, "--recovery-window", 0.1, 600) }),
        new("--out", "output directory (default bench/results/local/cluster-sim, git-ignored; with --record bench/results/cluster-sim)", (o, v) => o with { Output = NonEmpty(v, "--out") }),
        new("--parallelism", "simulations run at once (default: processor count)", (o, v) => o with { Parallelism = Int(v, "--parallelism", 1, 256) }),
        new("--tuning-zipf", "extra Zipf exponents for the knee-only tuning matrix, e.g. 0.8,1.2", (o, v) => o with { TuningZipf = DoubleList(v, "--tuning-zipf", 0, 10) }),
        new("--tuning-engines", "extra engine counts for the knee-only tuning matrix, e.g. 64", (o, v) => o with { TuningEngines = DoubleList(v, "--tuning-engines", 1, 4096).Select(CheckedInt("--tuning-engines")).ToArray() }),
    ];

    public static string Help => OptionParser.Help("bench/ClusterSimulator", Flags);

    /// <summary>Null when --help was asked for.</summary>
    public static SimulationOptions? Parse(IReadOnlyList<string> args) =>
        OptionParser.Parse(args, new SimulationOptions(), Flags) is { } options ? Validate(options) : null;

    private static SimulationOptions Validate(SimulationOptions o)
    {
        if (o.Warmup >= o.Duration)
            throw new OptionException($"--warmup: {o.Warmup} s must be shorter than --duration ({o.Duration} s).");
        if (o.EventAt is { } at && (at <= o.Warmup || at >= o.Duration))
            throw new OptionException($"--event-at: {at} s must fall inside the measured window ({o.Warmup} s, {o.Duration} s).");
        if (o.MaxCpuLoras < o.MaxLoras)
            throw new OptionException($"--max-cpu-loras: {o.MaxCpuLoras} must be at least --max-loras ({o.MaxLoras}), as in vLLM.");
        if (o.RankMix.Any(r => r.Rank > 256))
            throw new OptionException("--rank-mix: ranks above 256 are not supported by vLLM.");
        return o;
    }

    private static Func<double, int> CheckedInt(string flag) => d =>
        d == Math.Floor(d) ? (int)d : throw new OptionException($"{flag}: {d.ToString(CultureInfo.InvariantCulture)} is not an integer.");

    private static ReplicaConfig? Replicas(string v)
    {
        var text = v.Trim();
        if (text.Equals("all", StringComparison.OrdinalIgnoreCase)) return new ReplicaConfig { All = true };
        if (text.Equals("none", StringComparison.OrdinalIgnoreCase)) return null;
        var parts = text.Split(':');
        if (parts.Length != 2) throw new OptionException($"--replicas: '{v}' is not all, none or MIN:MAX (e.g. 1:4).");
        // The LoraAdapter schema's limits: each in [1, 1000], min not above max.
        var min = Int(parts[0], "--replicas", 1, 1000);
        var max = Int(parts[1], "--replicas", 1, 1000);
        if (min > max) throw new OptionException($"--replicas: min {min} must not exceed max {max}.");
        return new ReplicaConfig { Min = min, Max = max };
    }

    private static RankShare[] RankMix(string v)
    {
        var shares = new List<RankShare>();
        foreach (var part in v.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var kv = part.Split(':');
            if (kv.Length != 2) throw new OptionException($"--rank-mix: '{part}' is not rank:percent (e.g. 8:40).");
            var rank = Int(kv[0], "--rank-mix", 1, 256);
            var percent = Double(kv[1].TrimEnd('%'), "--rank-mix", 0, 100);
            if (shares.Any(s => s.Rank == rank)) throw new OptionException($"--rank-mix: rank {rank} is listed twice.");
            shares.Add(new RankShare(rank, percent / 100));
        }
        var total = shares.Sum(s => s.Share);
        if (shares.Count == 0 || Math.Abs(total - 1) > 0.001)
            throw new OptionException($"--rank-mix: percentages must add up to 100 (got {(total * 100).ToString("0.##", CultureInfo.InvariantCulture)}).");
        return [.. shares];
    }
}
