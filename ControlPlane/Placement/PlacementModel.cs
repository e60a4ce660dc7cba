namespace HybridServing.ControlPlane.Placement;

/// <summary>An engine as the solver sees it. <see cref="Current"/> is what it holds (or was last told to hold) now.</summary>
/// <param name="MaxLoraRank">0 = unknown (no rank limit applied).</param>
/// <param name="AdapterMemoryBudgetBytes">0 = unknown (no memory limit applied).</param>
/// <param name="StorageBudgetBytes">The sidecar's artifact cache budget (<c>cache_budget_bytes</c>): the adapters placed on
/// an engine must fit on its disk together. 0 = unknown (no storage limit applied).</param>
internal sealed record EngineSnapshot(
    string Name,
    string Node,
    IReadOnlyList<string> BaseModels,
    IReadOnlyDictionary<string, string> Labels,
    int MaxLoras,
    int MaxCpuLoras,
    int MaxLoraRank,
    long AdapterMemoryBudgetBytes,
    IReadOnlyCollection<string> Current,
    long StorageBudgetBytes = 0)
{
    /// <summary>
    /// Adapters an engine can hold registered at once. vLLM keeps up to <c>max_cpu_loras</c> in host
    /// memory (at least <c>max_loras</c>); registering more forces disk reloads on the request path.
    /// </summary>
    public int Slots => Math.Max(MaxLoras, MaxCpuLoras);
}

internal sealed record ClusterSnapshot(IReadOnlyList<EngineSnapshot> Engines);

/// <summary>One label-selector requirement (Kubernetes semantics).</summary>
internal sealed record SelectorRequirement(string Key, string Operator, IReadOnlyList<string> Values);

/// <summary>A label selector over engine labels; empty matches every engine.</summary>
internal sealed record EngineSelector(IReadOnlyDictionary<string, string> MatchLabels, IReadOnlyList<SelectorRequirement> Expressions)
{
    public static readonly EngineSelector Everything = new(new Dictionary<string, string>(), []);

    /// <summary>A canonical text form: equal selectors share compatibility computations.</summary>
    public string Key { get; } =
        string.Join(",", MatchLabels.OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => $"{l.Key}={l.Value}")) + ";" +
        string.Join(",", Expressions.Select(e => $"{e.Key} {e.Operator} ({string.Join("|", e.Values.Order(StringComparer.Ordinal))})").Order(StringComparer.Ordinal));

    public bool Matches(IReadOnlyDictionary<string, string> labels)
    {
        // Count checks and an index loop: the solver calls this for many engines, and enumerating the
        // interfaces allocates an enumerator every time.
        if (MatchLabels.Count > 0)
            foreach (var (k, v) in MatchLabels)
                if (!labels.TryGetValue(k, out var actual) || actual != v) return false;
        for (var i = 0; i < Expressions.Count; i++)
        {
            var e = Expressions[i];
            var has = labels.TryGetValue(e.Key, out var value);
            var ok = e.Operator switch
            {
                "In" => has && e.Values.Contains(value!),
                "NotIn" => !has || !e.Values.Contains(value!),
                "Exists" => has,
                "DoesNotExist" => !has,
                _ => false,
            };
            if (!ok) return false;
        }
        return true;
    }
}

/// <summary>What one adapter needs.</summary>
/// <param name="Name">Unique across the demands (the adapter's name on engines).</param>
/// <param name="MemoryBytes">Memory it takes on an engine (counted against the adapter memory budget).</param>
/// <param name="StorageBytes">Its files' size on disk (counted against the engine's storage budget).</param>
/// <param name="MaxReplicas"><see cref="int.MaxValue"/> for "all matching engines".</param>
/// <param name="CanPreempt">preemptionPolicy LowerPriority: may evict lower-priority adapters to reach its minimum.</param>
/// <param name="ExcludedEngines">Engines it must not go to now (backing off after failures there).</param>
/// <param name="RequestRate">Observed requests per second across gateways; 0 = unknown (the declared minimum applies).</param>
internal sealed record AdapterDemand(
    string Name,
    string BaseModel,
    int Rank,
    long MemoryBytes,
    EngineSelector Selector,
    int MinReplicas,
    int MaxReplicas,
    int Priority,
    bool CanPreempt,
    IReadOnlySet<string>? ExcludedEngines = null,
    double RequestRate = 0,
    long StorageBytes = 0);

/// <param name="SpreadAcrossNodes">Prefer engines on nodes that do not yet hold the adapter.</param>
/// <param name="RatePerReplica">Requests per second one replica is meant to take: an adapter with a known rate wants
/// <c>ceil(rate / RatePerReplica)</c> replicas, within its declared minimum and maximum.</param>
internal sealed record PlacementOptions(bool SpreadAcrossNodes = true, double RatePerReplica = PlacementOptions.DefaultRatePerReplica)
{
    public const double DefaultRatePerReplica = 5;

    public static readonly PlacementOptions Default = new();

    /// <summary>
    /// The replicas the solver brings an adapter up to before filling free slots: the declared minimum
    /// raised by its observed rate, never above its maximum. The one place demand turns into replicas.
    /// </summary>
    public int EffectiveMinimum(AdapterDemand demand)
    {
        var declared = Math.Min(demand.MinReplicas, demand.MaxReplicas);
        if (demand.RequestRate <= 0 || RatePerReplica <= 0) return declared;
        var wanted = Math.Ceiling(demand.RequestRate / RatePerReplica);
        return wanted >= demand.MaxReplicas ? demand.MaxReplicas : Math.Max(declared, (int)wanted);
    }
}

/// <summary>Why an adapter has fewer engines than its minimum.</summary>
internal sealed record Shortfall(string Reason, string Message);

/// <summary>An adapter removed from an engine so that a higher-priority one could take the slot.</summary>
internal sealed record Preemption(string Victim, string Engine, string By);

/// <summary>The solver's answer: which engines hold which adapters, and why some have fewer than they asked for.</summary>
internal sealed record Plan(
    IReadOnlyDictionary<string, IReadOnlyList<string>> EngineAdapters,
    IReadOnlyDictionary<string, IReadOnlyList<string>> AdapterEngines,
    IReadOnlyDictionary<string, Shortfall> Shortfalls,
    IReadOnlyList<Preemption> Preemptions)
{
    public IReadOnlyList<string> EnginesFor(string adapter) => AdapterEngines.TryGetValue(adapter, out var e) ? e : [];

    public IReadOnlyList<string> AdaptersOn(string engine) => EngineAdapters.TryGetValue(engine, out var a) ? a : [];

    /// <summary>The same cluster with this plan as its current state (for what-if runs and fixed-point checks).</summary>
    public ClusterSnapshot Apply(ClusterSnapshot cluster) =>
        new([.. cluster.Engines.Select(e => e with { Current = AdaptersOn(e.Name) })]);
}
