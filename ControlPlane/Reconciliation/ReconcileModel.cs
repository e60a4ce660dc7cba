using HybridServing.Contracts.Sidecar;
using HybridServing.ControlPlane.Engines;
using HybridServing.ControlPlane.Homes;
using HybridServing.ControlPlane.Placement;
using HybridServing.ControlPlane.Sources;

namespace HybridServing.ControlPlane.Reconciliation;

/// <summary>One declared LoraAdapter as the last reconcile saw it.</summary>
/// <param name="SpecError">InvalidSpec: "field: message".</param>
/// <param name="Owned">Discovered adapters this resource exposes (name conflicts lost are in <paramref name="Conflicts"/>).</param>
internal sealed record ResourceState(
    DeclaredAdapter Declared,
    string? SpecError,
    DiscoveryResult? Discovery,
    DateTimeOffset? NextDiscovery,
    IReadOnlyList<DiscoveredAdapter> Owned,
    IReadOnlyList<AdapterFailure> Conflicts,
    bool LoadOnStartup)
{
    public string Key => Declared.Key;
    public string Namespace => Declared.Resource.Metadata.NamespaceProperty ?? "default";
    public string Name => Declared.Resource.Metadata.Name;
}

/// <summary>The picture one reconcile built, decided on and recorded: what the read APIs answer from.</summary>
/// <param name="Plan">The solver's plan with the overflow grants applied: what engines were told to hold.</param>
/// <param name="Overflows">The unexpired overflow grants this pass considered (applied or not).</param>
/// <param name="Solved">The solver's own plan, before overflow grants: what placement decided.</param>
internal sealed record ReconcileModel(
    long Sequence,
    DateTimeOffset At,
    IReadOnlyList<ResourceState> Resources,
    IReadOnlyDictionary<string, (ResourceState Resource, DiscoveredAdapter Adapter)> Owners,
    IReadOnlyDictionary<string, AdapterDemand> Demands,
    Plan Plan,
    IReadOnlyList<EngineView> Engines,
    IReadOnlyList<EngineSnapshot> PlacedEngines,
    IReadOnlyList<DeclarationProblem> Problems,
    IReadOnlyList<OverflowGrant> Overflows,
    Plan Solved)
{
    private static readonly Plan NoPlan =
        new(new Dictionary<string, IReadOnlyList<string>>(), new Dictionary<string, IReadOnlyList<string>>(), new Dictionary<string, Shortfall>(), []);

    public static readonly ReconcileModel Empty = new(0, DateTimeOffset.MinValue, [],
        new Dictionary<string, (ResourceState, DiscoveredAdapter)>(), new Dictionary<string, AdapterDemand>(), NoPlan, [], [], [], [], NoPlan);

    /// <summary>Engines being drained (name → since): out of placement, routed only as a last resort.</summary>
    public IReadOnlyDictionary<string, DateTimeOffset> Drained { get; init; } = new Dictionary<string, DateTimeOffset>();

    /// <summary>Adapters LOADED on the drained <paramref name="engine"/> that no other undrained, awake engine has LOADED yet:
    /// the drain is done (the engine can go) when there is none.</summary>
    public IReadOnlyList<string> DrainPending(string engine) =>
        Engines.FirstOrDefault(v => v.Endpoint.Name == engine) is not { } view ? []
        : [.. view.Adapters.Values.Where(a => a.Phase == AdapterPhase.Loaded && Owners.ContainsKey(a.Name)
                && !Engines.Any(o => o.Endpoint.Name != engine && !Drained.ContainsKey(o.Endpoint.Name) && !o.Sleeping
                    && o.Adapters.TryGetValue(a.Name, out var other) && other.Phase == AdapterPhase.Loaded))
            .Select(a => a.Name).Order(StringComparer.Ordinal)];

    /// <summary>Engines holding <paramref name="adapter"/> only through an overflow grant.</summary>
    public IEnumerable<string> OverflowEngines(string adapter) =>
        Plan.EnginesFor(adapter).Where(e => !Solved.EnginesFor(adapter).Contains(e, StringComparer.Ordinal));
}
