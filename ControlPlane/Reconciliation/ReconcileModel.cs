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
internal sealed record ReconcileModel(
    long Sequence,
    DateTimeOffset At,
    IReadOnlyList<ResourceState> Resources,
    IReadOnlyDictionary<string, (ResourceState Resource, DiscoveredAdapter Adapter)> Owners,
    IReadOnlyDictionary<string, AdapterDemand> Demands,
    Plan Plan,
    IReadOnlyList<EngineView> Engines,
    IReadOnlyList<EngineSnapshot> PlacedEngines,
    IReadOnlyList<DeclarationProblem> Problems)
{
    public static readonly ReconcileModel Empty = new(0, DateTimeOffset.MinValue, [],
        new Dictionary<string, (ResourceState, DiscoveredAdapter)>(), new Dictionary<string, AdapterDemand>(),
        new Plan(new Dictionary<string, IReadOnlyList<string>>(), new Dictionary<string, IReadOnlyList<string>>(), new Dictionary<string, Shortfall>(), []),
        [], [], []);
}
