using HybridServing.Contracts.ControlPlane;
using HybridServing.Contracts.Sidecar;
using HybridServing.ControlPlane.Engines;
using HybridServing.ControlPlane.Reconciliation;

namespace HybridServing.ControlPlane.Routing;

/// <summary>Builds the routing table from a reconcile's picture. Pure.</summary>
internal static class RoutingTableBuilder
{
    /// <remarks>
    /// A lost sidecar says nothing about its engine: the engine stays healthy in the table (as its last load
    /// report says) for <paramref name="gracePeriod"/>, the time placement leaves its adapters there, so a
    /// sidecar restart never takes a serving engine out of routing. A dead engine is the gateway's to see
    /// (a failed connection ejects it at once, its load scrapes fail).
    /// </remarks>
    public static RoutingTable Build(ReconcileModel model, IReadOnlyDictionary<string, EngineView> views, TimeSpan gracePeriod)
    {
        var table = new RoutingTable();
        foreach (var view in views.Values.Where(v => v.Info is not null).OrderBy(v => v.Endpoint.Name, StringComparer.Ordinal))
        {
            var engine = new Engine
            {
                Name = view.Endpoint.Name,
                Node = view.Node,
                Url = view.EngineUrl,
                Healthy = (view.Load?.Healthy ?? true)
                    && (view.Connected || view.DisconnectedSince is not { } since || model.At - since < gracePeriod),
                MaxLoras = view.Info!.MaxLoras,
                MaxCpuLoras = view.Info.MaxCpuLoras,
                Draining = model.Drained.ContainsKey(view.Endpoint.Name),
            };
            engine.BaseModels.AddRange(view.Info.BaseModels);
            table.Engines.Add(engine);
        }
        // Out of placement but still holding adapters: drained engines (they serve until they go) and sleeping ones (a
        // request whose every holder sleeps is held by the gateway while the autoscaler wakes one: the activator).
        var outOfPlacement = model.Drained.Keys.Union(views.Values.Where(v => v.Sleeping).Select(v => v.Endpoint.Name)).Order(StringComparer.Ordinal).ToList();
        foreach (var (name, (resource, adapter)) in model.Owners.OrderBy(o => o.Key, StringComparer.Ordinal))
        {
            var route = new AdapterRoute
            {
                Name = name,
                Namespace = resource.Namespace,
                BaseModel = resource.Declared.Resource.Spec.BaseModel,
                Resource = resource.Name,
                Rank = adapter.Rank,
            };
            foreach (var engine in model.Plan.EnginesFor(name))
            {
                var loaded = views.TryGetValue(engine, out var v) && v.Adapters.TryGetValue(name, out var s) && s.Phase == AdapterPhase.Loaded;
                route.Endpoints.Add(new AdapterEndpoint { Engine = engine, Residency = loaded ? Residency.Loaded : Residency.Loading });
            }
            // A drained engine still serves what it holds until it goes (make before break); gateways prefer any other holder.
            foreach (var engine in outOfPlacement)
                if (views.TryGetValue(engine, out var v) && v.Adapters.TryGetValue(name, out var s) && s.Phase == AdapterPhase.Loaded
                    && route.Endpoints.All(e => e.Engine != engine))
                    route.Endpoints.Add(new AdapterEndpoint { Engine = engine, Residency = Residency.Loaded });
            table.Adapters.Add(route);
        }
        return table;
    }
}
