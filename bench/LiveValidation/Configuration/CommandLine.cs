using HybridServing.ClusterSimulator.Configuration;
using static HybridServing.ClusterSimulator.Configuration.OptionParser;

namespace HybridServing.LiveValidation.Configuration;

/// <summary>Parses <c>--flag value</c> / <c>--flag=value</c> (the cluster simulator's parser); every value is checked before anything starts.</summary>
internal static class CommandLine
{
    private static readonly OptionFlag<ValidationOptions>[] Flags =
    [
        new("--engines", "MockEngines, each with its sidecar (default 4)", (o, v) => o with { Engines = Int(v, "--engines", 1, 9) }),
        new("--adapters", "adapters, written as real PEFT directories (default 60)", (o, v) => o with { Adapters = Int(v, "--adapters", 1, 1000) }),
        new("--zipf", "Zipf exponent of adapter popularity (default 1.0)", (o, v) => o with { ZipfExponent = Double(v, "--zipf", 0, 10) }),
        new("--max-loras", "GPU LoRA slots per engine (default 2)", (o, v) => o with { MaxLoras = Int(v, "--max-loras", 1, 256) }),
        new("--max-cpu-loras", "host-memory LoRA cache per engine (default 16)", (o, v) => o with { MaxCpuLoras = Int(v, "--max-cpu-loras", 1, 4096) }),
        new("--prompt-mean", "mean prompt tokens (default 256)", (o, v) => o with { PromptMean = Double(v, "--prompt-mean", 1, 8192) }),
        new("--output-mean", "mean output tokens (default 32)", (o, v) => o with { OutputMean = Double(v, "--output-mean", 2, 2048) }),
        new("--time-scale", "model seconds per wall second on the live stack (default 4)", (o, v) => o with { TimeScale = Double(v, "--time-scale", 0.1, 100) }),
        new("--rates", "comma-separated arrival rates in requests per virtual second (default 12,18,24)", (o, v) => o with { Rates = DoubleList(v, "--rates", 0.01, 10_000) }),
        new("--duration", "virtual seconds of arrivals per run, warm-up included (default 60)", (o, v) => o with { Duration = Double(v, "--duration", 1, 3600) }),
        new("--warmup", "virtual seconds not measured at the start (default 15)", (o, v) => o with { Warmup = Double(v, "--warmup", 0, 3600) }),
        new("--seed", "workload seed; the same seed gives the same requests (default 1)", (o, v) => o with { Seed = Int(v, "--seed", int.MinValue, int.MaxValue) }),
        new("--policies", "comma-separated: B0, B1, B2, HybridServing, HybridServing-no-overflow, or all (default all)", (o, v) => o with { Policies = Policies(v) }),
        new("--rate-per-replica", "ControlPlane:RatePerReplica in requests per virtual second (default 1)", (o, v) => o with { RatePerReplica = Double(v, "--rate-per-replica", 0.001, 1e6) }),
        new("--report-interval", "Gateway:Demand:ReportInterval in virtual seconds (default 4)", (o, v) => o with { ReportInterval = Double(v, "--report-interval", 0.1, 3600) }),
        new("--demand-window", "ControlPlane:DemandWindow in virtual seconds (default 10)", (o, v) => o with { DemandWindow = Double(v, "--demand-window", 0.1, 3600) }),
        new("--control-interval", "ControlPlane:ResyncInterval in virtual seconds (default 30)", (o, v) => o with { ControlInterval = Double(v, "--control-interval", 0.1, 3600) }),
        new("--overflow-latency", "wall seconds of the live overflow-load path, charged to the simulator × the time scale (default 0.09)", (o, v) => o with { OverflowLatency = Double(v, "--overflow-latency", 0, 60) }),
        new("--tolerance", "relative TTFT tolerance, live vs simulated (default 0.35)", (o, v) => o with { Tolerance = Double(v, "--tolerance", 0, 10) }),
        new("--tolerance-floor", "absolute TTFT tolerance in virtual seconds; the larger of the two applies (default 0.05)", (o, v) => o with { ToleranceFloor = Double(v, "--tolerance-floor", 0, 60) }),
        new("--out", "output directory (default bench/results/local/live-validation, git-ignored; with --record bench/results/live-validation)", (o, v) => o with { Output = NonEmpty(v, "--out") }),
        new("--work-dir", "adapters, manifests and component logs (default $TMP/hybridserving-live-validation)", (o, v) => o with { WorkDirectory = NonEmpty(v, "--work-dir") }),
    ];

    public static string Help => OptionParser.Help("bench/LiveValidation", Flags);

    /// <summary>Null when --help was asked for.</summary>
    public static ValidationOptions? Parse(IReadOnlyList<string> args)
    {
        if (OptionParser.Parse(args, new ValidationOptions(), Flags) is not { } options) return null;
        if (options.Warmup >= options.Duration)
            throw new OptionException($"--warmup: {Show(options.Warmup)} s must be shorter than --duration ({Show(options.Duration)} s).");
        if (options.MaxCpuLoras < options.MaxLoras)
            throw new OptionException($"--max-cpu-loras: {options.MaxCpuLoras} must be at least --max-loras ({options.MaxLoras}), as in vLLM.");
        return options;
    }

    private static string[] Policies(string v) =>
        Choice(v, "--policies", ValidationOptions.AllPolicies, "the live stack cannot express the others");
}
