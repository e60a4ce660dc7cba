using HybridServing.ClusterSimulator.Cluster;
using HybridServing.ClusterSimulator.Configuration;
using HybridServing.Contracts.ControlPlane;
using HybridServing.Gateway;
using HybridServing.Gateway.Picking;
using HybridServing.MockEngine.Performance;

namespace HybridServing.ClusterSimulator.Policies;

/// <summary>
/// B0: a plain Kubernetes Service in front of vLLM with on-demand loading. Round robin over every
/// engine (the Gateway's round-robin policy); an engine that has never seen the adapter downloads
/// it from the object store and registers it on first use, then keeps it (host LRU of max_cpu_loras,
/// re-read from local disk after eviction).
/// </summary>
internal sealed class RoundRobinOnDemandPolicy(SimulationOptions options) : ServingPolicy
{
    private readonly EndpointPickingPipeline _pipeline =
        PickingPolicies.Create(new PickingOptions { Policy = PickingPolicies.RoundRobin }, SeededRandom(options, PolicyNames.B0));

    public override string Name => PolicyNames.B0;
    public override string Description => "round robin, adapters loaded on first use";

    public override void Initialize(SimulatedCluster cluster) { }

    public override SimEngine Route(SimRequest request, SimulatedCluster cluster) =>
        Pick(_pipeline, request, cluster, _ => Residency.Loaded) ?? throw new InvalidOperationException("No engine is alive.");
}

/// <summary>
/// B1: the Gateway API Inference Extension's documented setup: every adapter registered on every
/// engine, routed by its LoRA affinity scorer (1.0 / 0.8 / 0.6 / 0) plus queue and KV-cache scorers
/// at weights 2/2 (the Gateway's lora-affinity policy).
/// </summary>
internal sealed class GieLoraAffinityPolicy(SimulationOptions options) : ServingPolicy
{
    private readonly EndpointPickingPipeline _pipeline =
        PickingPolicies.Create(new PickingOptions { Policy = PickingPolicies.LoraAffinity }, SeededRandom(options, PolicyNames.B1));

    public override string Name => PolicyNames.B1;
    public override string Description => "GIE LoRA affinity (1.0/0.8/0.6/0) + queue/KV 2/2, every adapter on every engine";

    public override void Initialize(SimulatedCluster cluster)
    {
        foreach (var e in cluster.Alive)
            foreach (var a in cluster.Catalog.Adapters)
            {
                cluster.Stage(e, a.Index);
                cluster.EnsureRegistered(e, a.Index);
            }
    }

    public override SimEngine Route(SimRequest request, SimulatedCluster cluster) =>
        Pick(_pipeline, request, cluster, _ => Residency.Loaded) ?? throw new InvalidOperationException("No engine is alive.");
}

/// <summary>
/// B2: AIBrix-style. Each adapter goes to one engine, the one holding the fewest adapters (in
/// creation order); requests go by least request among the engines that hold it. When an engine
/// is lost its adapters are placed again the same way (AIBrix's controller reconciles on pod loss).
/// </summary>
internal sealed class AibrixStylePolicy(SimulationOptions options) : ServingPolicy
{
    private readonly EndpointPickingPipeline _pipeline =
        PickingPolicies.Create(new PickingOptions { Policy = PickingPolicies.LeastRequest }, SeededRandom(options, PolicyNames.B2));

    public override string Name => PolicyNames.B2;
    public override string Description => "AIBrix-style: one engine per adapter by fewest adapters, least request";

    public override void Initialize(SimulatedCluster cluster)
    {
        foreach (var a in cluster.Catalog.Adapters)
        {
            var e = Fewest(cluster);
            cluster.Stage(e, a.Index);
            cluster.EnsureRegistered(e, a.Index);
        }
    }

    public override SimEngine Route(SimRequest request, SimulatedCluster cluster)
    {
        var chosen = Pick(_pipeline, request, cluster, e => e.Registered.Contains(request.Adapter) ? Residency.Loaded : Residency.Unspecified);
        if (chosen is not null) return chosen;
        // Still downloading to its new engine after a loss: wait there.
        var loading = cluster.Alive.FirstOrDefault(e => e.Fetching.ContainsKey(request.Adapter));
        if (loading is not null) return loading;
        var target = Fewest(cluster);
        cluster.EnsureRegistered(target, request.Adapter);
        return target;
    }

    public override void OnEngineLost(SimEngine engine, SimulatedCluster cluster)
    {
        foreach (var a in engine.Registered.Order())
            if (!cluster.Alive.Any(e => e.Registered.Contains(a) || e.Fetching.ContainsKey(a)))
                cluster.EnsureRegistered(Fewest(cluster), a);
    }

    private static SimEngine Fewest(SimulatedCluster cluster) =>
        cluster.Alive.MinBy(e => e.Registered.Count + e.Fetching.Count)!;
}

/// <summary>
/// B∞: the physical limit of this workload on these engines. LoRA slots are unlimited (a batch can
/// hold as many distinct adapters as sequences), adapter loads cost nothing, every adapter is on
/// every engine, requests go by least load. No real system beats it.
/// </summary>
internal sealed class PhysicalLimitPolicy(SimulationOptions options) : ServingPolicy
{
    private static readonly TransferCost Free = new(0, double.PositiveInfinity);

    private readonly EndpointPickingPipeline _pipeline =
        PickingPolicies.Create(new PickingOptions { Policy = PickingPolicies.LeastRequest }, SeededRandom(options, PolicyNames.BInfinity));

    public override string Name => PolicyNames.BInfinity;
    public override string Description => "unlimited LoRA slots, free loads, least load";

    public override PerformanceProfile Profile { get; } =
        PerformanceProfile.H100Llama3_8B with { HostToGpu = Free, LocalDiskToHost = Free, RemoteToHost = Free };

    public override EngineModelOptions EngineOptions(SimulationOptions o) =>
        base.EngineOptions(o) with { MaxLoras = o.MaxNumSeqs, MaxCpuLoras = Math.Max(o.MaxNumSeqs, o.MaxCpuLoras) };

    public override void Initialize(SimulatedCluster cluster)
    {
        foreach (var e in cluster.Alive)
            foreach (var a in cluster.Catalog.Adapters)
            {
                cluster.Stage(e, a.Index);
                cluster.EnsureRegistered(e, a.Index);
            }
    }

    public override SimEngine Route(SimRequest request, SimulatedCluster cluster) =>
        Pick(_pipeline, request, cluster, _ => Residency.Loaded) ?? throw new InvalidOperationException("No engine is alive.");
}
