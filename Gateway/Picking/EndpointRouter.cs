using HybridServing.Contracts.ControlPlane;
using HybridServing.Gateway.Health;
using HybridServing.Gateway.Load;
using HybridServing.Gateway.Routing;
using Microsoft.Extensions.Options;

namespace HybridServing.Gateway.Picking;

/// <summary>
/// The edge between live state and the pure pipeline: copies the routing snapshot, the load board
/// and passive health into plain <see cref="Candidate"/> values, then asks the pipeline.
/// </summary>
internal sealed class EndpointRouter(
    EndpointPickingPipeline pipeline,
    EngineLoadBoard loads,
    PassiveHealth health,
    IOptions<GatewayOptions> options,
    TimeProvider time)
{
    public string Policy => pipeline.Name;

    public PickDecision Pick(RoutingSnapshot snapshot, ResolvedModel model, IReadOnlySet<string> excluded) =>
        pipeline.Pick(BuildRequest(snapshot, model, excluded));

    public PickDecision Pick(PickRequest request) => pipeline.Pick(request);

    /// <param name="only">When set, the one engine the request may go to (an overflow target); every filter still applies.</param>
    public PickRequest BuildRequest(RoutingSnapshot snapshot, ResolvedModel model, IReadOnlySet<string> excluded, string? only = null)
    {
        var now = time.GetUtcNow();
        var maxAge = options.Value.Picking.MaxLoadAge;
        var candidates = new List<Candidate>();
        foreach (var engine in snapshot.Engines.Values)
        {
            if (!engine.BaseModels.Contains(model.BaseModel) || only is not null && engine.Name != only) continue;
            var residency = model.Adapter is null ? Residency.Loaded
                : model.Adapter.Endpoints.TryGetValue(engine.Name, out var r) ? r : Residency.Unspecified;
            var scraped = loads.Scraped(engine.Name);
            var load = scraped is not null && now - scraped.At <= maxAge ? scraped.Load : null;
            candidates.Add(new Candidate(engine, residency, load, loads.InFlight(engine.Name), health.IsEjected(engine.Name)));
        }
        return new PickRequest(model, candidates, excluded);
    }
}
