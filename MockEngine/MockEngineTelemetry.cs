using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace HybridServing.MockEngine;

/// <summary>
/// The component's one ActivitySource and one Meter (ServiceDefaults exports "HybridServing.*").
/// vLLM's own metric names live on /metrics; these are OpenTelemetry's view of the same engine.
/// </summary>
internal static class MockEngineTelemetry
{
    public const string Name = "HybridServing.MockEngine";

    public static readonly ActivitySource Source = new(Name);
    public static readonly Meter Meter = new(Name);

    public static readonly Counter<long> Requests = Meter.CreateCounter<long>("mockengine.requests", description: "Inference requests answered, by outcome.");
    public static readonly Counter<long> AdapterLoads = Meter.CreateCounter<long>("mockengine.adapter.loads", description: "Runtime adapter loads, by outcome.");
}
