using HybridServing.Contracts.Sidecar;
using HybridServing.ControlPlane.Engines;

namespace HybridServing.ControlPlane.Kubernetes;

/// <summary>Which adapter names some engine still holds (or is still loading or unloading), as the sidecars report it.</summary>
internal interface IAdapterResidency
{
    IReadOnlySet<string> ResidentAdapters();

    /// <summary>
    /// True when every one of <paramref name="engines"/> has reported its state at least once (or has been
    /// unreachable past the grace period): statuses computed before that describe a half picture.
    /// </summary>
    bool Settled(IReadOnlyList<HybridServing.ControlPlane.Homes.EngineEndpoint> engines);

    /// <summary>Raised when an engine's reported state changed.</summary>
    event Action? Changed;
}

/// <summary>
/// Residency from the sidecars' state streams the reconciler already follows (no extra calls). An engine
/// unreachable for longer than the grace period does not count: the reconciler has already given up on
/// it, and when it comes back its sidecar is sent the current desired set, which unloads what was deleted.
/// </summary>
internal sealed class EngineRegistryResidency(EngineRegistry engines, TimeSpan gracePeriod, TimeProvider time) : IAdapterResidency
{
    public event Action? Changed
    {
        add => engines.Changed += value;
        remove => engines.Changed -= value;
    }

    public bool Settled(IReadOnlyList<HybridServing.ControlPlane.Homes.EngineEndpoint> wanted)
    {
        var now = time.GetUtcNow();
        var views = engines.Connections.ToDictionary(c => c.Endpoint.Name, c => c.View, StringComparer.Ordinal);
        foreach (var e in wanted)
        {
            if (!views.TryGetValue(e.Name, out var view)) return false;
            if (view.Info is not null) continue;
            if (!view.Connected && view.DisconnectedSince is { } since && now - since >= gracePeriod) continue;
            return false;
        }
        return true;
    }

    public IReadOnlySet<string> ResidentAdapters()
    {
        var now = time.GetUtcNow();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var connection in engines.Connections)
        {
            var view = connection.View;
            if (!view.Connected && view.DisconnectedSince is { } since && now - since >= gracePeriod) continue;
            foreach (var (name, state) in view.Adapters)
                if (state.Phase != AdapterPhase.Failed) names.Add(name);
        }
        return names;
    }
}
