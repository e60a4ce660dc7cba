using System.Collections.Frozen;
using HybridServing.Contracts.ControlPlane;

namespace HybridServing.Gateway.Routing;

/// <summary>An engine as the routing table describes it.</summary>
internal sealed record EngineRoute(string Name, Uri Url, IReadOnlySet<string> BaseModels, bool Healthy, int MaxLoras, int MaxCpuLoras);

/// <summary>An adapter and the engines it is assigned to, by engine name.</summary>
internal sealed record AdapterRouteInfo(
    string Name, string Namespace, string BaseModel, string Resource, int Rank, IReadOnlyDictionary<string, Residency> Endpoints)
{
    public bool IsLoadedOn(string engine) => Endpoints.TryGetValue(engine, out var r) && r == Residency.Loaded;
}

/// <summary>What a request's <c>model</c> names: a base model, or an adapter on a base model.</summary>
internal sealed record ResolvedModel(string Model, string BaseModel, AdapterRouteInfo? Adapter)
{
    public bool IsAdapter => Adapter is not null;
}

/// <summary>
/// One immutable version of the routing table. Only the subscriber builds these; pickers and
/// endpoints read whichever snapshot is current when they start and never see it change.
/// </summary>
internal sealed class RoutingSnapshot
{
    public static readonly RoutingSnapshot Empty = new(0, DateTimeOffset.UnixEpoch, [], []);

    public RoutingSnapshot(long version, DateTimeOffset receivedAt, IEnumerable<EngineRoute> engines, IEnumerable<AdapterRouteInfo> adapters)
    {
        Version = version;
        ReceivedAt = receivedAt;
        Engines = engines.ToFrozenDictionary(e => e.Name, StringComparer.Ordinal);
        Adapters = adapters.ToFrozenDictionary(a => a.Name, StringComparer.Ordinal);
        BaseModels = Engines.Values.SelectMany(e => e.BaseModels).ToFrozenSet(StringComparer.Ordinal);
    }

    public long Version { get; }
    public DateTimeOffset ReceivedAt { get; }
    public FrozenDictionary<string, EngineRoute> Engines { get; }
    public FrozenDictionary<string, AdapterRouteInfo> Adapters { get; }
    public FrozenSet<string> BaseModels { get; }

    /// <summary>Base names win over adapters of the same name, as on a vLLM engine.</summary>
    public ResolvedModel? Resolve(string model)
    {
        if (BaseModels.Contains(model)) return new ResolvedModel(model, model, null);
        if (Adapters.TryGetValue(model, out var adapter)) return new ResolvedModel(model, adapter.BaseModel, adapter);
        return null;
    }

    /// <summary>Builds a snapshot from the wire table; malformed engine entries are skipped, not fatal.</summary>
    public static RoutingSnapshot From(RoutingTable table, DateTimeOffset receivedAt)
    {
        var engines = new List<EngineRoute>();
        foreach (var e in table.Engines)
        {
            if (string.IsNullOrEmpty(e.Name) || !Uri.TryCreate(e.Url, UriKind.Absolute, out var url)) continue;
            if (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps) continue;
            engines.Add(new EngineRoute(e.Name, url, e.BaseModels.ToFrozenSet(StringComparer.Ordinal), e.Healthy, e.MaxLoras, e.MaxCpuLoras));
        }
        var adapters = new List<AdapterRouteInfo>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var a in table.Adapters)
        {
            if (string.IsNullOrEmpty(a.Name) || !seen.Add(a.Name)) continue;
            var endpoints = new Dictionary<string, Residency>(StringComparer.Ordinal);
            foreach (var ep in a.Endpoints)
            {
                // LOADED wins when an engine is listed twice.
                if (!endpoints.TryGetValue(ep.Engine, out var r) || ep.Residency > r) endpoints[ep.Engine] = ep.Residency;
            }
            adapters.Add(new AdapterRouteInfo(a.Name, string.IsNullOrEmpty(a.Namespace) ? "default" : a.Namespace,
                a.BaseModel, a.Resource, a.Rank, endpoints.ToFrozenDictionary(StringComparer.Ordinal)));
        }
        return new RoutingSnapshot(table.Version, receivedAt, engines, adapters);
    }
}
