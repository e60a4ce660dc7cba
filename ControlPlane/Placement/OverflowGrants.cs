using HybridServing.Contracts.Resources;

namespace HybridServing.ControlPlane.Placement;

/// <summary>
/// A gateway's request that an adapter be loaded on one more engine, <see cref="Engine"/>, until
/// <see cref="Expires"/>: every engine holding it had all its GPU LoRA slots taken by other adapters,
/// and this engine had free ones.
/// </summary>
internal sealed record OverflowGrant(string Adapter, string Engine, DateTimeOffset Expires);

/// <summary>Why a grant is not applied: a reason constant and a message naming the limit.</summary>
internal sealed record OverflowRefusal(string Reason, string Message);

/// <summary>Reasons an overflow load is refused (beside <see cref="LoraAdapterReasons"/> ones) or accepted.</summary>
internal static class OverflowReasons
{
    /// <summary>Accepted: the adapter is in the engine's desired set as an overflow replica.</summary>
    public const string Granted = "Overflow";
    /// <summary>Accepted: placement already put the adapter on that engine.</summary>
    public const string AlreadyPlaced = "AlreadyPlaced";
    /// <summary>The adapter already has <c>replicas.max</c> engines.</summary>
    public const string MaxReplicas = "MaxReplicas";
    /// <summary>The engine has no host slot (or adapter memory) left within its overflow allowance; nothing is evicted for an overflow.</summary>
    public const string EngineFull = "EngineFull";
    /// <summary>No engine of that name is known.</summary>
    public const string UnknownEngine = "UnknownEngine";
    /// <summary>The engine's sidecar is not connected or reports the engine unhealthy.</summary>
    public const string EngineUnavailable = "EngineUnavailable";
    /// <summary>The adapter loads on demand and is not placed anywhere: a cold start (RequestLoad without an engine) comes first.</summary>
    public const string NotPlaced = "NotPlaced";
    /// <summary><c>ControlPlane:Overflow:Enabled</c> is false.</summary>
    public const string Disabled = "OverflowDisabled";
}

/// <summary>
/// Overflow loads as a layer over a solved plan. The solver never sees grants: it keeps its own
/// placement and may fill the slot a grant uses, and the grant then lives on in the engine's overflow
/// allowance or, past it, is not applied any more (reclaimed). A grant is applied on every pass while it
/// is valid, so an overflow replica stays put until it expires: no churn in between. It only ever adds an
/// adapter to an engine's desired set — nothing is evicted, moved or preempted for it — and only within
/// every limit placement itself respects (base model, selector, <c>max_lora_rank</c>, backoff,
/// <c>replicas.max</c>, the adapter memory budget), with one difference: an engine may hold up to
/// <c>extraSlotsPerEngine</c> adapters more than its host slots (<see cref="EngineSnapshot.Slots"/>).
/// vLLM registers adapters beyond <c>max_cpu_loras</c> (the host cache is an LRU over them), so one more
/// registration costs at most a local-disk reload later, while the request it is for would otherwise wait
/// seconds for a GPU slot. Pure: the reconciler and the cluster simulator call the same code.
/// </summary>
internal static class OverflowGrants
{
    /// <summary>
    /// <paramref name="plan"/> with every valid, unexpired grant added, oldest (earliest expiry) first; a
    /// grant for an adapter the plan already has on that engine, for an engine not in <paramref name="cluster"/>
    /// or for an adapter not in <paramref name="demands"/> changes nothing. Shortfalls and preemptions are
    /// the solver's and stay as they are.
    /// </summary>
    public static Plan Apply(Plan plan, ClusterSnapshot cluster, IReadOnlyList<AdapterDemand> demands,
        IReadOnlyCollection<OverflowGrant> grants, DateTimeOffset now, int extraSlotsPerEngine)
    {
        if (grants.Count == 0) return plan;
        var byName = new Dictionary<string, AdapterDemand>(demands.Count, StringComparer.Ordinal);
        foreach (var d in demands) byName[d.Name] = d;
        var engines = new Dictionary<string, EngineSnapshot>(cluster.Engines.Count, StringComparer.Ordinal);
        foreach (var e in cluster.Engines) engines[e.Name] = e;

        // Copies only of what changes: one list per touched engine and adapter.
        Dictionary<string, List<string>>? onEngine = null, holders = null;
        foreach (var grant in grants.Where(g => g.Expires > now)
                     .OrderBy(g => g.Expires).ThenBy(g => g.Adapter, StringComparer.Ordinal).ThenBy(g => g.Engine, StringComparer.Ordinal))
        {
            if (!engines.TryGetValue(grant.Engine, out var engine) || !byName.TryGetValue(grant.Adapter, out var demand)) continue;
            IReadOnlyList<string> held = onEngine?.GetValueOrDefault(grant.Engine) ?? plan.AdaptersOn(grant.Engine);
            IReadOnlyList<string> holding = holders?.GetValueOrDefault(grant.Adapter) ?? plan.EnginesFor(grant.Adapter);
            if (holding.Contains(grant.Engine, StringComparer.Ordinal)) continue;
            if (Check(held, holding, engine, demand, byName, extraSlotsPerEngine) is not null) continue;
            onEngine ??= new(StringComparer.Ordinal);
            holders ??= new(StringComparer.Ordinal);
            onEngine[grant.Engine] = Sorted(held, grant.Adapter);
            holders[grant.Adapter] = Sorted(holding, grant.Engine);
        }
        if (onEngine is null) return plan;

        var engineAdapters = new Dictionary<string, IReadOnlyList<string>>(plan.EngineAdapters, StringComparer.Ordinal);
        foreach (var (e, names) in onEngine) engineAdapters[e] = names;
        var adapterEngines = new Dictionary<string, IReadOnlyList<string>>(plan.AdapterEngines, StringComparer.Ordinal);
        foreach (var (a, names) in holders!) adapterEngines[a] = names;
        return plan with { EngineAdapters = engineAdapters, AdapterEngines = adapterEngines };
    }

    /// <summary>
    /// Why <paramref name="demand"/> cannot go on <paramref name="engine"/> as an overflow replica under
    /// <paramref name="plan"/>, or null when it can (the caller has checked it is not there already).
    /// </summary>
    /// <param name="demands">Every demand by name: the adapter memory already on the engine is theirs.</param>
    public static OverflowRefusal? Check(Plan plan, EngineSnapshot engine, AdapterDemand demand,
        IReadOnlyDictionary<string, AdapterDemand> demands, int extraSlotsPerEngine) =>
        Check(plan.AdaptersOn(engine.Name), plan.EnginesFor(demand.Name), engine, demand, demands, extraSlotsPerEngine);

    private static OverflowRefusal? Check(IReadOnlyList<string> held, IReadOnlyList<string> holding, EngineSnapshot engine,
        AdapterDemand demand, IReadOnlyDictionary<string, AdapterDemand> demands, int extraSlotsPerEngine)
    {
        if (!engine.BaseModels.Contains(demand.BaseModel, StringComparer.Ordinal))
            return new(LoraAdapterReasons.NoCompatibleEngine, $"engine '{engine.Name}' does not serve base model '{demand.BaseModel}'.");
        if (!demand.Selector.Matches(engine.Labels))
            return new(LoraAdapterReasons.NoCompatibleEngine, $"engine '{engine.Name}' does not match the podSelector of '{demand.Name}'.");
        if (engine.MaxLoraRank > 0 && demand.Rank > engine.MaxLoraRank)
            return new(LoraAdapterReasons.AdapterIncompatible, $"rank {demand.Rank} of '{demand.Name}' exceeds max_lora_rank {engine.MaxLoraRank} of engine '{engine.Name}'.");
        if (engine.Slots <= 0)
            return new(LoraAdapterReasons.AdapterIncompatible, $"engine '{engine.Name}' has no LoRA slots (max_loras is 0).");
        if (demand.ExcludedEngines?.Contains(engine.Name) == true)
            return new(LoraAdapterReasons.LoadFailed, $"loading '{demand.Name}' on engine '{engine.Name}' failed recently; backing off before trying there again.");
        if (holding.Count >= demand.MaxReplicas)
            return new(OverflowReasons.MaxReplicas, $"'{demand.Name}' is already on {holding.Count} engine(s), its replicas.max.");
        var limit = engine.Slots + Math.Max(0, extraSlotsPerEngine);
        if (held.Count >= limit)
            return new(OverflowReasons.EngineFull,
                $"engine '{engine.Name}' holds {held.Count} adapter(s): its {engine.Slots} host slot(s) plus an overflow allowance of {limit - engine.Slots} are taken, and nothing is evicted for an overflow.");
        if (engine.AdapterMemoryBudgetBytes > 0)
        {
            long used = 0;
            foreach (var name in held) used += demands.TryGetValue(name, out var d) ? d.MemoryBytes : 0;
            if (used + demand.MemoryBytes > engine.AdapterMemoryBudgetBytes)
                return new(OverflowReasons.EngineFull,
                    $"'{demand.Name}' needs {demand.MemoryBytes} bytes of adapter memory; engine '{engine.Name}' has {engine.AdapterMemoryBudgetBytes - used} of {engine.AdapterMemoryBudgetBytes} left.");
        }
        if (engine.StorageBudgetBytes > 0)
        {
            long stored = 0;
            foreach (var name in held) stored += demands.TryGetValue(name, out var d) ? d.StorageBytes : 0;
            if (stored + demand.StorageBytes > engine.StorageBudgetBytes)
                return new(OverflowReasons.EngineFull,
                    $"'{demand.Name}' takes {demand.StorageBytes} bytes on disk; engine '{engine.Name}' has {engine.StorageBudgetBytes - stored} of its {engine.StorageBudgetBytes}-byte adapter cache left.");
        }
        return null;
    }

    private static List<string> Sorted(IReadOnlyList<string> names, string added)
    {
        var list = new List<string>(names.Count + 1);
        list.AddRange(names);
        var at = list.BinarySearch(added, StringComparer.Ordinal);
        list.Insert(at < 0 ? ~at : at, added);
        return list;
    }
}
