using System.Collections.Frozen;
using HybridServing.Contracts.ControlPlane;

namespace HybridServing.Gateway.Routing;

/// <summary>An engine as the routing table describes it.</summary>
internal sealed record EngineRoute(string Name, Uri Url, IReadOnlySet<string> BaseModels, bool Healthy, int MaxLoras, int MaxCpuLoras)
{
    /// <summary>The URL as YARP's destination prefix (no query, no trailing slash), built once per routing table, not per request.</summary>
    public string DestinationPrefix { get; } = Url.GetLeftPart(UriPartial.Path).TrimEnd('/');

    /// <summary>The ControlPlane drains it for scale-down: picked only when no other engine can serve.</summary>
    public bool Draining { get; init; }
}

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
        // Every name resolves to one shared instance: requests look it up instead of building it.
        var resolved = new Dictionary<string, ResolvedModel>(StringComparer.Ordinal);
        foreach (var a in Adapters.Values) resolved[a.Name] = new ResolvedModel(a.Name, a.BaseModel, a);
        foreach (var m in BaseModels) resolved[m] = new ResolvedModel(m, m, null);
        _resolved = resolved.ToFrozenDictionary(StringComparer.Ordinal);
    }

    private readonly FrozenDictionary<string, ResolvedModel> _resolved;

    public long Version { get; }
    public DateTimeOffset ReceivedAt { get; }
    public FrozenDictionary<string, EngineRoute> Engines { get; }
    public FrozenDictionary<string, AdapterRouteInfo> Adapters { get; }
    public FrozenSet<string> BaseModels { get; }

    /// <summary>Base names win over adapters of the same name, as on a vLLM engine.</summary>
    public ResolvedModel? Resolve(string model) => _resolved.GetValueOrDefault(model);

    /// <summary>Builds a snapshot from the wire table; malformed engine entries are skipped, not fatal.</summary>
    public static RoutingSnapshot From(RoutingTable table, DateTimeOffset receivedAt)
    {
        var engines = new List<EngineRoute>();
        foreach (var e in table.Engines)
        {
            if (string.IsNullOrEmpty(e.Name) || !Uri.TryCreate(e.Url, UriKind.Absolute, out var url)) continue;
            if (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps) continue;
            engines.Add(new EngineRoute(e.Name, url, e.BaseModels.ToFrozenSet(StringComparer.Ordinal), e.Healthy, e.MaxLoras, e.MaxCpuLoras) { Draining = e.Draining });
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
