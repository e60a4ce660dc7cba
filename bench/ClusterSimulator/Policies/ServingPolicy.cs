using HybridServing.ClusterSimulator.Cluster;
using HybridServing.ClusterSimulator.Configuration;
using HybridServing.ClusterSimulator.Workload;
using HybridServing.Contracts.ControlPlane;
using HybridServing.Gateway.Picking;
using HybridServing.Gateway.Routing;
using HybridServing.MockEngine.Performance;

namespace HybridServing.ClusterSimulator.Policies;

/// <summary>Something done every <paramref name="Interval"/> virtual seconds, first at <paramref name="Interval"/>.</summary>
internal sealed record PeriodicAction(double Interval, Action<SimulatedCluster> Run);

/// <summary>
/// One way of running the cluster: where adapters live (placement, possibly re-planned from
/// observed demand) and which engine serves each request (the Gateway's picking pipeline).
/// A new instance per run: policies keep state (round-robin position, observed rates).
/// </summary>
internal abstract class ServingPolicy
{
    private static readonly IReadOnlySet<string> NoneExcluded = new HashSet<string>();
    private ResolvedModel[]? _models;

    public abstract string Name { get; }
    public abstract string Description { get; }

    public virtual PerformanceProfile Profile => PerformanceProfile.H100Llama3_8B;

    public virtual EngineModelOptions EngineOptions(SimulationOptions o) => new()
    {
        MaxNumSeqs = o.MaxNumSeqs,
        EnableLora = true,
        MaxLoras = o.MaxLoras,
        MaxCpuLoras = o.MaxCpuLoras,
        MaxModelLen = WorkloadGenerator.MaxPromptTokens + WorkloadGenerator.MaxOutputTokens,
    };

    /// <summary>What the policy's components do on their own clocks (a gateway's demand report, a control plane's resync).</summary>
    public virtual IReadOnlyList<PeriodicAction> Periodic => [];

    /// <summary>Initial placement, before the first request (artifacts staged, adapters registered).</summary>
    public abstract void Initialize(SimulatedCluster cluster);

    public abstract SimEngine Route(SimRequest request, SimulatedCluster cluster);

    /// <summary>A request arrived at the gateway (demand signal).</summary>
    public virtual void Observe(SimRequest request, SimulatedCluster cluster) { }

    public virtual void OnEngineLost(SimEngine engine, SimulatedCluster cluster) { }

    /// <summary>
    /// Runs the Gateway's pipeline over the live engines. <paramref name="residency"/> is what the
    /// routing table says about the adapter on each engine.
    /// </summary>
    protected SimEngine? Pick(EndpointPickingPipeline pipeline, SimRequest request, SimulatedCluster cluster, Func<SimEngine, Residency> residency) =>
        Decide(pipeline, request, cluster, residency).Chosen;

    /// <summary><see cref="Pick"/> with what the pipeline saw and decided, for advice on top of it (overflow).</summary>
    protected Picked Decide(EndpointPickingPipeline pipeline, SimRequest request, SimulatedCluster cluster, Func<SimEngine, Residency> residency)
    {
        _models ??= [.. cluster.Catalog.Adapters.Select(a => new ResolvedModel(a.Name, AdapterCatalog.BaseModel,
            new AdapterRouteInfo(a.Name, "default", AdapterCatalog.BaseModel, a.Name, a.Rank, new Dictionary<string, Residency>())))];
        var alive = cluster.Alive;
        var candidates = new Candidate[alive.Count];
        for (var i = 0; i < alive.Count; i++)
        {
            var e = alive[i];
            candidates[i] = new Candidate(e.Route, residency(e), e.Load, e.InFlight, Ejected: false);
        }
        var pick = new PickRequest(_models[request.Adapter], candidates, NoneExcluded);
        var decision = pipeline.Pick(pick);
        return new Picked(pick, decision, decision.Chosen is { } chosen ? EngineOf(chosen, pick, alive) : null);
    }

    /// <summary>The engine behind one of <paramref name="pick"/>'s candidates (the same order as <paramref name="alive"/>).</summary>
    protected static SimEngine EngineOf(Candidate candidate, PickRequest pick, IReadOnlyList<SimEngine> alive)
    {
        for (var i = 0; i < alive.Count; i++)
            if (ReferenceEquals(pick.Candidates[i], candidate)) return alive[i];
        throw new InvalidOperationException("The picker chose an engine that was not a candidate.");
    }

    /// <summary>What the pipeline saw, what it decided, and the engine it chose (null: none).</summary>
    protected sealed record Picked(PickRequest Request, PickDecision Decision, SimEngine? Chosen);

    protected static Random SeededRandom(SimulationOptions o, string policy) => new(Seeds.Derive(o.Seed, Seeds.Of(policy)));

    public static ServingPolicy Create(string name, SimulationOptions options) => name switch
    {
        PolicyNames.B0 => new RoundRobinOnDemandPolicy(options),
        PolicyNames.B1 => new GieLoraAffinityPolicy(options),
        PolicyNames.B2 => new AibrixStylePolicy(options),
        PolicyNames.HybridServing => new HybridServingPolicy(options),
        PolicyNames.BInfinity => new PhysicalLimitPolicy(options),
        PolicyNames.HybridServingNoOverflow => new HybridServingPolicy(options, overflow: false),
        _ => throw new ArgumentException($"Unknown policy '{name}'.", nameof(name)),
    };
}
