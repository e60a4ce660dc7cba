using System.Globalization;
using HybridServing.Contracts.Resources;
using HybridServing.ControlPlane;
using HybridServing.ControlPlane.Placement;
using HybridServing.Gateway;

namespace HybridServing.ClusterSimulator.Configuration;

/// <summary>One rank and the share of adapters that have it.</summary>
internal sealed record RankShare(int Rank, double Share);

/// <summary>Every knob of the benchmark (docs/benchmarks.md §1); each one is a command-line option.</summary>
internal sealed record SimulationOptions
{
    public static readonly IReadOnlyList<string> AllScenarios = [ScenarioNames.Steady, ScenarioNames.FlashCrowd, ScenarioNames.Drift, ScenarioNames.EngineLost];
    /// <summary>The §1 policies plus HybridServing without overflow loads (an ablation of one product feature).</summary>
    public static readonly IReadOnlyList<string> AllPolicies = [PolicyNames.B0, PolicyNames.B1, PolicyNames.B2, PolicyNames.HybridServing, PolicyNames.BInfinity, PolicyNames.HybridServingNoOverflow];

    public int Adapters { get; init; } = 1000;
    public int Engines { get; init; } = 16;
    /// <summary>Zipf exponent (1 = classic Zipf; not S-LoRA's power-law "alpha").</summary>
    public double ZipfExponent { get; init; } = 1.0;
    public IReadOnlyList<RankShare> RankMix { get; init; } = [new(8, 0.4), new(16, 0.3), new(32, 0.2), new(64, 0.1)];
    /// <summary>Adapter size per unit of rank: ≈ 5.2 MB for Llama-3.1-8B with every linear layer adapted (BF16).</summary>
    public double MegabytesPerRank { get; init; } = 5.2;
    public int MaxLoras { get; init; } = 8;
    public int MaxCpuLoras { get; init; } = 64;
    public int MaxNumSeqs { get; init; } = 256;
    /// <summary>Coefficient of variation of the Gamma inter-arrival times (1 = Poisson).</summary>
    public double ArrivalCv { get; init; } = 1;
    /// <summary>Fixed rates (requests/s) for the latency sweep; null derives them from the knees.</summary>
    public IReadOnlyList<double>? Rates { get; init; }
    /// <summary>Knee search stops when the bracket is narrower than this fraction.</summary>
    public double KneeTolerance { get; init; } = 0.05;
    /// <summary>Virtual seconds of arrivals per run, including the warm-up.</summary>
    public double Duration { get; init; } = 60;
    /// <summary>Virtual seconds at the start that are not measured (caches and placement settle).</summary>
    public double Warmup { get; init; } = 15;
    /// <summary>When the dynamic scenarios' event happens (virtual seconds from the start); null = a quarter into the measured window.</summary>
    public double? EventAt { get; init; }
    public int Seed { get; init; } = 1;
    public IReadOnlyList<string> Scenarios { get; init; } = AllScenarios;
    public IReadOnlyList<string> Policies { get; init; } = AllPolicies;
    public double PromptMean { get; init; } = 1000;
    public double OutputMean { get; init; } = 250;
    /// <summary>
    /// Seconds between the ControlPlane's periodic re-plans (<c>ControlPlane:ResyncInterval</c>, product default);
    /// it also re-plans whenever a demand report changes the replicas some adapter's rate asks for.
    /// </summary>
    public double ControlInterval { get; init; } = new ControlPlaneOptions().ResyncInterval.TotalSeconds;
    /// <summary>
    /// <c>ControlPlane:DemandWindow</c>: the sliding window behind each observed rate. Shorter than the
    /// product default (60 s) so that the window is full before a 60 s run is measured.
    /// </summary>
    public double DemandWindow { get; init; } = 10;
    /// <summary><c>Gateway:Demand:ReportInterval</c> in seconds (product default); 0 turns reporting off, as in the product.</summary>
    public double ReportInterval { get; init; } = new GatewayOptions().Demand.ReportInterval.TotalSeconds;
    /// <summary><c>ControlPlane:RatePerReplica</c>: requests per second one replica is meant to take (product default).</summary>
    public double RatePerReplica { get; init; } = PlacementOptions.DefaultRatePerReplica;
    /// <summary>
    /// <c>spec.deploymentConfig.replicas</c> of every simulated LoraAdapter (null = not given). The default
    /// is what an operator serving many adapters declares: at least one engine each, up to every engine.
    /// </summary>
    public ReplicaConfig? Replicas { get; init; } = new() { All = true };
    /// <summary><c>ControlPlane:Overflow:ExtraSlotsPerEngine</c> (product default).</summary>
    public int OverflowExtraSlots { get; init; } = new ControlPlaneOptions().Overflow.ExtraSlotsPerEngine;
    /// <summary><c>ControlPlane:Overflow:GrantTtl</c> in seconds (product default).</summary>
    public double OverflowGrantTtl { get; init; } = new ControlPlaneOptions().Overflow.GrantTtl.TotalSeconds;
    /// <summary><c>Gateway:Picking:Overflow:FreeSlotHeadroom</c> (product default).</summary>
    public int OverflowHeadroom { get; init; } = new GatewayOptions().Picking.Overflow.FreeSlotHeadroom;
    /// <summary>
    /// Seconds from an overflow grant to the adapter being usable on the target: the control path the
    /// simulator does not run (RequestLoad, a reconcile pass, the sidecar's load, the routing table update).
    /// The live stack on this machine takes ≈ 0.09–0.11 s of wall time on average (bench/LiveValidation).
    /// </summary>
    public double OverflowLatency { get; init; } = 0.1;
    /// <summary><c>Gateway:Picking:Overflow:RefusalCooldown</c> in seconds (product default).</summary>
    public double OverflowRefusalCooldown { get; init; } = new GatewayOptions().Picking.Overflow.RefusalCooldown.TotalSeconds;
    /// <summary><c>Gateway:Picking:Overflow:MaxQueueDepth</c> (product default).</summary>
    public int OverflowMaxQueue { get; init; } = new GatewayOptions().Picking.Overflow.MaxQueueDepth;
    /// <summary>Gateway scrape interval of engine metrics (the live default is 50 ms).</summary>
    public double ScrapeInterval { get; init; } = 0.05;
    public double SloTtft { get; init; } = 2;
    public double SloTpot { get; init; } = 0.1;
    /// <summary>Rate of the dynamic scenarios; null = 0.8 × HybridServing's steady knee.</summary>
    public double? DynamicRate { get; init; }
    /// <summary>Window over which the dynamic scenarios judge "SLO met" when measuring recovery.</summary>
    public double RecoveryWindow { get; init; } = 5;
    public string Output { get; init; } = Path.Combine("bench", "results", "local", "cluster-sim");
    public int Parallelism { get; init; } = Environment.ProcessorCount;
    /// <summary>Also run the knee search for other Zipf exponents and engine counts.</summary>
    public IReadOnlyList<double> TuningZipf { get; init; } = [];
    public IReadOnlyList<int> TuningEngines { get; init; } = [];

    public double MeasuredStart => Warmup;
    public double EventTime => EventAt ?? Warmup + (Duration - Warmup) / 4;

    public string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"{Adapters} adapters, {Engines} engines, Zipf {ZipfExponent}, ranks {string.Join(",", RankMix.Select(r => $"{r.Rank}:{r.Share * 100:0.#}%"))}, " +
        $"{MegabytesPerRank} MB/rank, max_loras {MaxLoras}, max_cpu_loras {MaxCpuLoras}, max_num_seqs {MaxNumSeqs}, arrival CV {ArrivalCv}, " +
        $"{Duration} s runs ({Warmup} s warm-up), prompt/output mean {PromptMean}/{OutputMean}, seed {Seed}; " +
        $"HybridServing: replicas {ReplicasText(Replicas)}, {RatePerReplica} req/s per replica, demand reported every {ReportInterval} s over a {DemandWindow} s window, resync every {ControlInterval} s; " +
        $"overflow: {OverflowExtraSlots} extra slot(s) per engine, grants for {OverflowGrantTtl} s, headroom {OverflowHeadroom}, queue ≤ {OverflowMaxQueue}, " +
        $"load path {OverflowLatency} s");

    /// <summary>The <c>--replicas</c> form of a replicas spec: <c>all</c>, <c>none</c> (not given) or <c>MIN:MAX</c>.</summary>
    public static string ReplicasText(ReplicaConfig? r) => r switch
    {
        null => "none",
        { All: true } => "all",
        _ => string.Create(CultureInfo.InvariantCulture, $"{r.Min}:{r.Max}"),
    };
}

internal static class ScenarioNames
{
    public const string Steady = "steady";
    public const string FlashCrowd = "flash-crowd";
    public const string Drift = "drift";
    public const string EngineLost = "engine-lost";
}

internal static class PolicyNames
{
    public const string B0 = "B0";
    public const string B1 = "B1";
    public const string B2 = "B2";
    public const string HybridServing = "HybridServing";
    public const string BInfinity = "Binf";
    /// <summary>HybridServing with <c>Gateway:Picking:Overflow:Enabled=false</c>: what overflow loads add.</summary>
    public const string HybridServingNoOverflow = "HybridServing-no-overflow";
}
