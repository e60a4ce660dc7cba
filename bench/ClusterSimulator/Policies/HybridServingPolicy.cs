using HybridServing.ClusterSimulator.Cluster;
using HybridServing.ClusterSimulator.Configuration;
using HybridServing.ClusterSimulator.Workload;
using HybridServing.ControlPlane;
using HybridServing.ControlPlane.Placement;
using HybridServing.ControlPlane.Reconciliation;
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
/// <para>
/// Overflow loads as the product does them (on by default with the hybrid policy): when every holder
/// of the adapter is slot-bound the Gateway's <see cref="OverflowAdvisor"/> names an engine with free
/// GPU slots; the control plane checks it with <see cref="OverflowGrants.Check(Plan, EngineSnapshot, AdapterDemand, IReadOnlyDictionary{string, AdapterDemand}, int)"/>,
/// records a grant and applies every live grant over its plan with <see cref="OverflowGrants.Apply"/>;
/// the request goes there if the adapter is registered within <c>Gateway:Picking:Overflow:Wait</c>,
/// else to the holder. <c>overflow: false</c> is the ablation with <c>Gateway:Picking:Overflow:Enabled=false</c>.
/// </para>
/// </summary>
internal sealed class HybridServingPolicy(SimulationOptions options, bool overflow = true) : ServingPolicy
{
    /// <summary>The one simulated gateway (rates are kept per gateway and summed).</summary>
    private const string GatewayName = "gateway-sim";

    private readonly EndpointPickingPipeline _pipeline =
        PickingPolicies.Create(new PickingOptions { Policy = PickingPolicies.Hybrid, Seed = options.Seed }, SeededRandom(options, PolicyNames.HybridServing));
    private readonly DemandCounter _counter = new();
    private readonly PlacementOptions _placement = new(SpreadAcrossNodes: true, options.RatePerReplica);
    private readonly OverflowOptions _gatewayOverflow = new()
    {
        FreeSlotHeadroom = options.OverflowHeadroom, MaxQueueDepth = options.OverflowMaxQueue,
        RefusalCooldown = TimeSpan.FromSeconds(options.OverflowRefusalCooldown),
    };
    /// <summary>The gateway's service-time and control-path figures (<c>OverflowCoordinator.Costs</c>), fed from the virtual clock.</summary>
    private OverflowCostTracker? _costs;
    private readonly OverflowGrantOptions _controlPlaneOverflow = new()
    {
        ExtraSlotsPerEngine = options.OverflowExtraSlots, GrantTtl = TimeSpan.FromSeconds(options.OverflowGrantTtl),
    };
    private readonly Dictionary<(string Adapter, string Engine), OverflowGrant> _grants = [];
    private readonly Dictionary<(string Adapter, string Engine), double> _refusedUntil = [];
    private DemandTracker? _tracker;
    private AdapterDemand[]? _declared;
    /// <summary>The solver's own last plan (what engines are told they hold before grants; as the Reconciler keeps it).</summary>
    private Plan? _lastPlan;
    /// <summary>The last pass's inputs, for checking and applying grants between passes.</summary>
    private ClusterSnapshot? _lastSnapshot;
    private AdapterDemand[]? _lastDemands;
    private Dictionary<string, AdapterDemand>? _lastDemandsByName;
    /// <summary>The plan in force: <see cref="_lastPlan"/> with the live grants applied.</summary>
    private Plan? _applied;
    private double _lastReport;
    private Dictionary<string, SimEngine>? _engines;
    private string[]? _adapterNames;
    private Func<string, int>? _pendingOn;

    public override string Name => overflow ? PolicyNames.HybridServing : PolicyNames.HybridServingNoOverflow;
    public override string Description => overflow
        ? "ControlPlane placement solver fed by the gateway's demand reports + Gateway hybrid picker + overflow loads"
        : "ablation: HybridServing with Gateway:Picking:Overflow:Enabled=false";

    /// <summary>Overflow loads the control plane granted (each one applied over the plan until it expires).</summary>
    public int OverflowGrantsMade { get; private set; }

    /// <summary>Overflow loads the control plane refused (a refused pair is not asked again during the gateway's cooldown).</summary>
    public int OverflowRefusals { get; private set; }

    public override IReadOnlyList<PeriodicAction> Periodic =>
        options.ReportInterval > 0
            ? [new(options.ReportInterval, ReportDemand), new(options.ControlInterval, Replan)]
            : [new(options.ControlInterval, Replan)];

    /// <summary>Placement solves so far (every pass of the control loop solves).</summary>
    public int Replans { get; private set; }

    public override void Initialize(SimulatedCluster cluster)
    {
        _engines = cluster.AllEngines.ToDictionary(e => e.Name, StringComparer.Ordinal);
        _adapterNames = [.. cluster.Catalog.Adapters.Select(a => a.Name)];
        _pendingOn = PendingOverflowsOn;
        // The gateway times each request it forwards (service) and each overflow load it waits on (control path).
        var costs = _costs = new OverflowCostTracker(_gatewayOverflow);
        cluster.RequestFinished += r => { if (r.Service is { } service) costs.ObserveService(service); };
        _tracker = new DemandTracker(cluster.Clock, TimeSpan.FromSeconds(options.DemandWindow), options.RatePerReplica);
        // Before traffic: every declared adapter placed from its replicas spec alone; artifacts pre-staged.
        var plan = Solve(cluster);
        foreach (var e in cluster.Alive)
            foreach (var name in plan.AdaptersOn(e.Name))
                cluster.Stage(e, IndexOf(name));
        ApplyGrants(cluster);
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

    /// <summary>One pass of the control loop: solve, add the live overflow grants, apply.</summary>
    public void Replan(SimulatedCluster cluster)
    {
        Solve(cluster);
        ApplyGrants(cluster);
    }

    public override void OnEngineLost(SimEngine engine, SimulatedCluster cluster) => Replan(cluster);

    public override SimEngine Route(SimRequest request, SimulatedCluster cluster)
    {
        var a = request.Adapter;
        var picked = Decide(_pipeline, request, cluster, e => e.Registered.Contains(a) ? Residency.Loaded
            : e.Fetching.ContainsKey(a) ? Residency.Loading : Residency.Unspecified);
        if (picked.Chosen is { } chosen)
        {
            if (overflow && OverflowAdvisor.Advise(picked.Request, picked.Decision, _gatewayOverflow, _costs!.Current, _pendingOn!) is { } target)
                return Overflow(request, EngineOf(target, picked.Request, cluster.Alive), cluster) ?? chosen;
            return chosen;
        }
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
    /// The gateway's <c>OverflowCoordinator</c> and the control plane's <c>RequestOverflow</c> for one
    /// request: a refused (adapter, engine) is not asked again for the refusal cooldown; an accepted one
    /// is a grant applied over the plan at once. The request goes to the target when the adapter is
    /// registered there within the wait bound, else (null) to the holder the pipeline chose. A granted
    /// load takes <c>--overflow-latency</c> (the control path) before the engine has it. (The live gateway
    /// would send a request whose load misses the bound to the holder after the wait; with every node
    /// holding every adapter's artifacts and the default latency, the bound is never reached.)
    /// </summary>
    private SimEngine? Overflow(SimRequest request, SimEngine target, SimulatedCluster cluster)
    {
        var name = cluster.Catalog.Adapters[request.Adapter].Name;
        var key = (name, target.Name);
        if (_refusedUntil.TryGetValue(key, out var until) && cluster.Now < until) return null;
        var grant = new OverflowGrant(name, target.Name, SimulatedCluster.At(cluster.Now) + _controlPlaneOverflow.GrantTtl);
        if (_applied!.EnginesFor(name).Contains(target.Name, StringComparer.Ordinal))
        {
            // Already there (placed or granted): the control plane answers AlreadyPlaced and renews a grant it holds.
            if (_grants.ContainsKey(key)) _grants[key] = grant;
        }
        else
        {
            var engine = _lastSnapshot!.Engines.First(e => e.Name == target.Name);
            if (!_lastDemandsByName!.TryGetValue(name, out var demand)
                || OverflowGrants.Check(_applied, engine, demand, _lastDemandsByName, _controlPlaneOverflow.ExtraSlotsPerEngine) is not null)
            {
                _refusedUntil[key] = cluster.Now + _gatewayOverflow.RefusalCooldown.TotalSeconds;
                OverflowRefusals++;
                return null;
            }
            _grants[key] = grant;
            OverflowGrantsMade++;
            // The live path from the gateway's RequestLoad to the adapter in the routing table.
            cluster.RegisterAfter(target, request.Adapter, options.OverflowLatency);
            _costs!.ObserveControlPath(options.OverflowLatency);
            ApplyGrants(cluster);
        }
        var ready = target.Registered.Contains(request.Adapter)
            || target.Fetching.TryGetValue(request.Adapter, out var done) && done <= SimulatedCluster.At(cluster.Now) + _gatewayOverflow.Wait;
        return ready ? target : null;
    }

    /// <summary>
    /// The gateway's count of overflow loads on their way to an engine (each will take a GPU slot):
    /// granted adapters not registered there yet.
    /// </summary>
    private int PendingOverflowsOn(string engine)
    {
        var n = 0;
        var e = _engines![engine];
        foreach (var a in e.Fetching.Keys)
            if (_grants.ContainsKey((_adapterNames![a], engine))) n++;
        return n;
    }

    /// <summary>The Reconciler's last step: drop expired grants, apply the rest over the solver's plan, act on it.</summary>
    private void ApplyGrants(SimulatedCluster cluster)
    {
        var now = SimulatedCluster.At(cluster.Now);
        var alive = _lastSnapshot!.Engines.Select(e => e.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var key in _grants.Where(g => g.Value.Expires <= now || !alive.Contains(g.Key.Engine)).Select(g => g.Key).ToList())
            _grants.Remove(key);
        _applied = OverflowGrants.Apply(_lastPlan!, _lastSnapshot, _lastDemands!, _grants.Values, now, _controlPlaneOverflow.ExtraSlotsPerEngine);
        Apply(cluster, _applied);
    }

    /// <summary>
    /// The Reconciler's decide step: the declared adapters as <see cref="AdapterDemand"/>s (in name
    /// order, min/max from the replicas spec, priority 0, preemption LowerPriority — the spec defaults),
    /// each with its observed rate; engines with what the last plan gave them.
    /// </summary>
    private Plan Solve(SimulatedCluster cluster)
    {
        var (min, max) = Reconciler.ReplicaBounds(options.Replicas);
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
        _lastSnapshot = snapshot;
        _lastDemands = demands;
        _lastDemandsByName = demands.ToDictionary(d => d.Name, StringComparer.Ordinal);
        return _lastPlan = PlacementSolver.Solve(snapshot, demands, _placement);
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
