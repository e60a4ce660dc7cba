using HybridServing.ClusterSimulator.Cluster;
using HybridServing.ClusterSimulator.Configuration;
using HybridServing.ClusterSimulator.Workload;
using HybridServing.ControlPlane.Placement;
using HybridServing.Contracts.ControlPlane;
using HybridServing.Gateway;
using HybridServing.Gateway.Picking;

namespace HybridServing.ClusterSimulator.Policies;

/// <summary>
/// HybridServing: the ControlPlane's <see cref="PlacementSolver"/> decides which engines hold which
/// adapters, re-planned every control interval from observed demand; the Gateway's hybrid picking
/// pipeline routes among the engines where the adapter is loaded; an adapter with no holder goes
/// through the cold-start path (RequestLoad: the solver places it, the request waits for the load).
/// </summary>
/// <remarks>
/// Stand-in: the solver takes replicas (min/max), not request rates. The live system's demand
/// signal is turned into replicas here the way a control plane would: an adapter that carries a
/// share s of the traffic gets ceil(s × engines × <see cref="Headroom"/>) replicas (at least the
/// declared minimum of 1, at most every engine).
/// </remarks>
internal sealed class HybridServingPolicy(SimulationOptions options, bool spill = false) : ServingPolicy
{
    /// <summary>Replicas per "one engine's worth" of traffic: room for bursts and for GPU-slot contention.</summary>
    public const double Headroom = 2;

    private readonly EndpointPickingPipeline _pipeline =
        PickingPolicies.Create(new PickingOptions { Policy = PickingPolicies.Hybrid, Seed = options.Seed }, SeededRandom(options, PolicyNames.HybridServing));
    private readonly DemandTracker _demand = new(options.Adapters, options.DemandWindow);
    private AdapterDemand[]? _baseDemands;

    public override string Name => spill ? PolicyNames.HybridServingSpill : PolicyNames.HybridServing;
    public override string Description => spill
        ? "proposal, not product: HybridServing + load on a free-slot engine when every holder's GPU slots are taken"
        : "ControlPlane placement solver fed by observed demand + Gateway hybrid picker";
    public override double? ControlInterval => options.ControlInterval;

    public int Replans { get; private set; }

    /// <summary>Give spare host slots to extra replicas (see <see cref="Solve"/>).</summary>
    public bool SpreadSpareSlots { get; init; } = true;

    public override void Initialize(SimulatedCluster cluster)
    {
        // Before traffic: every declared adapter at its declared minimum (1); artifacts pre-staged.
        var plan = Solve(cluster, rates: null, extra: null);
        foreach (var e in cluster.Alive)
            foreach (var name in plan.AdaptersOn(e.Name))
                cluster.Stage(e, IndexOf(name));
        Apply(cluster, plan);
    }

    public override void Observe(SimRequest request, SimulatedCluster cluster) => _demand.Record(request.Adapter, cluster.Now);

    public override void OnControlTick(SimulatedCluster cluster) => Apply(cluster, Solve(cluster, _demand.Rates(cluster.Now), extra: null));

    public override void OnEngineLost(SimEngine engine, SimulatedCluster cluster) => OnControlTick(cluster);

    public override SimEngine Route(SimRequest request, SimulatedCluster cluster)
    {
        var a = request.Adapter;
        var chosen = Pick(_pipeline, request, cluster, e => e.Registered.Contains(a) ? Residency.Loaded
            : e.Fetching.ContainsKey(a) ? Residency.Loading : Residency.Unspecified);
        if (chosen is not null) return spill ? SpillIfSlotBound(chosen, request, cluster) : chosen;
        // Cold start: wait for a load already under way, else ask the control plane (RequestLoad).
        var loading = cluster.Alive.Where(e => e.Fetching.ContainsKey(a)).MinBy(e => e.Fetching[a]);
        if (loading is not null) return loading;
        Apply(cluster, Solve(cluster, _demand.Rates(cluster.Now), extra: a));
        return cluster.Alive.FirstOrDefault(e => e.Registered.Contains(a))
            ?? cluster.Alive.Where(e => e.Fetching.ContainsKey(a)).MinBy(e => e.Fetching[a])
            // Every slot is held by adapters with demand (more adapters in use than the cluster can hold):
            // the gateway falls back to the least busy engine, which loads it on demand like vLLM would.
            ?? cluster.Alive.MinBy(e => e.InFlight)!;
    }

    /// <summary>
    /// Proposal: when the chosen holder has no free GPU slot and is not running the adapter, the
    /// request would wait for a slot (seconds); an engine with a free slot loads it from local disk
    /// in tens of milliseconds. The control plane drops the extra registration at its next plan.
    /// </summary>
    private static SimEngine SpillIfSlotBound(SimEngine chosen, SimRequest request, SimulatedCluster cluster)
    {
        var name = cluster.Catalog.Adapters[request.Adapter].Name;
        if (chosen.Load is not { } load || load.RunningAdapters.Contains(name) || load.RunningAdapters.Count < chosen.Model.Options.MaxLoras)
            return chosen;
        var free = cluster.Alive.Where(e => e.Load is { } l && l.RunningAdapters.Count < e.Model.Options.MaxLoras - 1 && l.Waiting < 4)
            .MinBy(e => (e.Load!.RunningAdapters.Count, e.InFlight));
        return free ?? chosen;
    }

    private Plan Solve(SimulatedCluster cluster, double[]? rates, int? extra)
    {
        var engines = cluster.Alive;
        _baseDemands ??= [.. cluster.Catalog.Adapters.Select(x => new AdapterDemand(x.Name, AdapterCatalog.BaseModel, x.Rank, x.SizeBytes,
            EngineSelector.Everything, MinReplicas: 1, MaxReplicas: 1, Priority: 0, CanPreempt: false))];
        var demands = _baseDemands;
        if (rates is not null)
        {
            var total = rates.Sum();
            var desired = new int[rates.Length];
            for (var i = 0; i < rates.Length; i++)
            {
                var share = total > 0 ? rates[i] / total : 0;
                desired[i] = (int)Math.Clamp(Math.Ceiling(share * engines.Count * Headroom - 1e-9), 1, engines.Count);
            }
            // Host slots nobody needs are not worth keeping empty: more holders give the picker a
            // choice of engines with a free GPU slot. Spare slots are shared in proportion to need
            // (the maximum pass fills them; the minimum stays what demand asks for).
            var slots = engines.Sum(e => Math.Max(e.Model.Options.MaxLoras, e.Model.Options.MaxCpuLoras));
            var spread = SpreadSpareSlots ? Math.Max(1, slots / (double)desired.Sum()) : 1;
            demands = new AdapterDemand[_baseDemands.Length];
            for (var i = 0; i < demands.Length; i++)
            {
                var max = Math.Clamp((int)Math.Floor(desired[i] * spread), desired[i], engines.Count);
                // No request in the window: keep it where it is but let busier adapters take its slot (min 0).
                demands[i] = _baseDemands[i] with { MinReplicas = rates[i] <= 0 ? 0 : desired[i], MaxReplicas = max };
            }
        }
        if (extra is { } x && demands[x].MinReplicas < 1) demands[x] = demands[x] with { MinReplicas = 1, MaxReplicas = Math.Max(1, demands[x].MaxReplicas) };
        var snapshot = new ClusterSnapshot([.. engines.Select(e => new EngineSnapshot(e.Name, e.Name, [AdapterCatalog.BaseModel],
            new Dictionary<string, string>(), e.Model.Options.MaxLoras, e.Model.Options.MaxCpuLoras, MaxLoraRank: 0, AdapterMemoryBudgetBytes: 0,
            [.. e.Registered.Concat(e.Fetching.Keys).Select(i => cluster.Catalog.Adapters[i].Name)]))]);
        Replans++;
        return PlacementSolver.Solve(snapshot, demands, PlacementOptions.Default);
    }

    private void Apply(SimulatedCluster cluster, Plan plan)
    {
        var engines = cluster.Alive;
        var wanted = engines.Select(e => plan.AdaptersOn(e.Name).Select(IndexOf).ToHashSet()).ToArray();
        var current = engines.Select(e => e.Registered.Concat(e.Fetching.Keys).Order().ToArray()).ToArray();
        // Make before break: every new holder starts loading before any old holder unloads.
        for (var i = 0; i < engines.Count; i++)
            foreach (var a in wanted[i].Order()) cluster.EnsureRegistered(engines[i], a);
        for (var i = 0; i < engines.Count; i++)
            foreach (var a in current[i]) if (!wanted[i].Contains(a)) cluster.Unregister(engines[i], a);
    }

    private static int IndexOf(string name) =>
        int.Parse(name.AsSpan(name.IndexOf('-') + 1), System.Globalization.CultureInfo.InvariantCulture);
}
