using HybridServing.ClusterSimulator.Cluster;
using HybridServing.ClusterSimulator.Configuration;
using HybridServing.ClusterSimulator.Workload;
using HybridServing.ControlPlane.Placement;
using HybridServing.Contracts.ControlPlane;
using HybridServing.Contracts.Resources;
using HybridServing.Gateway;
using HybridServing.Gateway.Demand;
using HybridServing.Gateway.Picking;

namespace HybridServing.ClusterSimulator.Policies;

/// <summary>
/// HybridServing with its demand path as in the live system: the gateway counts accepted requests
/// per adapter (the Gateway's <see cref="DemandCounter"/>) and reports the counts every report
/// interval; the control plane records them in its <see cref="DemandTracker"/> (sliding window, on
/// the virtual clock) and re-plans when a report changes the replicas some adapter's rate asks for,
/// and on its resync interval; each plan is the ControlPlane's <see cref="PlacementSolver"/> over the
/// declared adapters, each carrying its observed rate. The Gateway's hybrid picking pipeline routes
/// among the engines where the adapter is loaded; an adapter with no holder goes through the cold
/// start (RequestLoad: the control plane plans again, the request waits for the load).
/// </summary>
internal sealed class HybridServingPolicy(SimulationOptions options, bool spill = false) : ServingPolicy
{
    /// <summary>The one simulated gateway (rates are kept per gateway and summed).</summary>
    private const string GatewayName = "gateway-sim";

    private readonly EndpointPickingPipeline _pipeline =
        PickingPolicies.Create(new PickingOptions { Policy = PickingPolicies.Hybrid, Seed = options.Seed }, SeededRandom(options, PolicyNames.HybridServing));
    private readonly DemandCounter _counter = new();
    private readonly PlacementOptions _placement = new(SpreadAcrossNodes: true, options.RatePerReplica);
    private DemandTracker? _tracker;
    private AdapterDemand[]? _declared;
    private Plan? _lastPlan;
    private double _lastReport;

    public override string Name => spill ? PolicyNames.HybridServingSpill : PolicyNames.HybridServing;
    public override string Description => spill
        ? "proposal, not product: HybridServing + load on a free-slot engine when every holder's GPU slots are taken"
        : "ControlPlane placement solver fed by the gateway's demand reports + Gateway hybrid picker";

    public override IReadOnlyList<PeriodicAction> Periodic =>
        options.ReportInterval > 0
            ? [new(options.ReportInterval, ReportDemand), new(options.ControlInterval, Replan)]
            : [new(options.ControlInterval, Replan)];

    /// <summary>Placement solves so far (every pass of the control loop solves).</summary>
    public int Replans { get; private set; }

    public override void Initialize(SimulatedCluster cluster)
    {
        _tracker = new DemandTracker(cluster.Clock, TimeSpan.FromSeconds(options.DemandWindow), options.RatePerReplica);
        // Before traffic: every declared adapter placed from its replicas spec alone; artifacts pre-staged.
        var plan = Solve(cluster);
        foreach (var e in cluster.Alive)
            foreach (var name in plan.AdaptersOn(e.Name))
                cluster.Stage(e, IndexOf(name));
        Apply(cluster, plan);
        // The gateway starts counting with the traffic, at 0.
        _lastReport = 0;
    }

    /// <summary>The gateway accepted a request: it counts towards the adapter's demand.</summary>
    public override void Observe(SimRequest request, SimulatedCluster cluster) => _counter.Count(cluster.Catalog.Adapters[request.Adapter].Name);

    /// <summary>
    /// The gateway's report (what <c>DemandReporter</c> sends every interval) and the control plane's
    /// <c>ReportDemand</c>: record it, and plan again only when some adapter's rate now asks for a
    /// different number of replicas.
    /// </summary>
    public void ReportDemand(SimulatedCluster cluster)
    {
        var counts = _counter.Drain();
        var window = cluster.Now - _lastReport;
        _lastReport = cluster.Now;
        if (counts.Count == 0) return;
        var report = new DemandReport { Gateway = GatewayName, WindowSeconds = window };
        foreach (var (adapter, requests) in counts) report.Adapters.Add(new AdapterDemandSample { Name = adapter, Requests = requests });
        if (_tracker!.Record(report)) Replan(cluster);
    }

    /// <summary>One pass of the control loop: solve and apply.</summary>
    public void Replan(SimulatedCluster cluster) => Apply(cluster, Solve(cluster));

    public override void OnEngineLost(SimEngine engine, SimulatedCluster cluster) => Replan(cluster);

    public override SimEngine Route(SimRequest request, SimulatedCluster cluster)
    {
        var a = request.Adapter;
        var chosen = Pick(_pipeline, request, cluster, e => e.Registered.Contains(a) ? Residency.Loaded
            : e.Fetching.ContainsKey(a) ? Residency.Loading : Residency.Unspecified);
        if (chosen is not null) return spill ? SpillIfSlotBound(chosen, request, cluster) : chosen;
        // Cold start: wait for a load already under way, else ask the control plane (RequestLoad).
        var loading = cluster.Alive.Where(e => e.Fetching.ContainsKey(a)).MinBy(e => e.Fetching[a]);
        if (loading is not null) return loading;
        Replan(cluster);
        return cluster.Alive.FirstOrDefault(e => e.Registered.Contains(a))
            ?? cluster.Alive.Where(e => e.Fetching.ContainsKey(a)).MinBy(e => e.Fetching[a])
            // The plan has no room for it (fewer host slots than declared adapters, e.g. after an engine
            // was lost): the gateway falls back to the least busy engine, which loads it on demand like vLLM would.
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

    /// <summary>
    /// The Reconciler's decide step: the declared adapters as <see cref="AdapterDemand"/>s (in name
    /// order, min/max from the replicas spec, priority 0, preemption LowerPriority — the spec defaults),
    /// each with its observed rate; engines with what the last plan gave them.
    /// </summary>
    private Plan Solve(SimulatedCluster cluster)
    {
        var (min, max) = DeclaredReplicas(options.Replicas);
        _declared ??= [.. cluster.Catalog.Adapters.Select(x => new AdapterDemand(x.Name, AdapterCatalog.BaseModel, x.Rank, x.SizeBytes,
            EngineSelector.Everything, min, max, Priority: 0, CanPreempt: true))];
        var rates = _tracker!.Rates();
        var demands = new AdapterDemand[_declared.Length];
        for (var i = 0; i < demands.Length; i++)
            demands[i] = rates.TryGetValue(_declared[i].Name, out var rate) ? _declared[i] with { RequestRate = rate } : _declared[i];
        var snapshot = new ClusterSnapshot([.. cluster.Alive.Select(e => new EngineSnapshot(e.Name, e.Name, [AdapterCatalog.BaseModel],
            new Dictionary<string, string>(), e.Model.Options.MaxLoras, e.Model.Options.MaxCpuLoras, MaxLoraRank: 0, AdapterMemoryBudgetBytes: 0,
            _lastPlan is { } last && last.EngineAdapters.ContainsKey(e.Name)
                ? last.AdaptersOn(e.Name)
                : [.. e.Registered.Concat(e.Fetching.Keys).Select(i => cluster.Catalog.Adapters[i].Name)]))]);
        Replans++;
        return _lastPlan = PlacementSolver.Solve(snapshot, demands, _placement);
    }

    /// <summary>
    /// Replicas as the Reconciler reads <c>spec.deploymentConfig.replicas</c> (<c>Reconciler.ToDemand</c>,
    /// which is private, hence restated): <c>all</c> = 1..every engine; not given = exactly one; a
    /// missing min is 1, a missing max is the min.
    /// </summary>
    internal static (int Min, int Max) DeclaredReplicas(ReplicaConfig? replicas)
    {
        if (replicas?.All == true) return (1, int.MaxValue);
        var min = replicas?.Min ?? Math.Min(1, replicas?.Max ?? 1);
        return (min, replicas?.Max ?? Math.Max(min, 1));
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
