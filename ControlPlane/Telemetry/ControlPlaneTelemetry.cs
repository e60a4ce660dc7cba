using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace HybridServing.ControlPlane.Telemetry;

/// <summary>The component's one ActivitySource and one Meter (ServiceDefaults subscribes to <c>HybridServing.*</c>).</summary>
internal static class ControlPlaneTelemetry
{
    public const string Name = "HybridServing.ControlPlane";

    public static readonly ActivitySource ActivitySource = new(Name);
    public static readonly Meter Meter = new(Name);

    public static readonly Counter<long> Reconciles = Meter.CreateCounter<long>("reconciles", description: "Reconcile passes (decide, apply, record).");
    public static readonly Histogram<double> ReconcileDuration = Meter.CreateHistogram<double>("reconcile.duration", "s", "Duration of one reconcile pass.");
    public static readonly Histogram<double> SolveDuration = Meter.CreateHistogram<double>("placement.duration", "s", "Duration of one placement solve.");
    public static readonly Counter<long> EnsureCalls = Meter.CreateCounter<long>("sidecar.ensure_calls", description: "EnsureAdapters calls to sidecars, by result.");
    public static readonly Counter<long> LoadFailures = Meter.CreateCounter<long>("load_failures", description: "Adapter load failures reported by sidecars (each starts or extends a backoff).");
    public static readonly Counter<long> OverflowRequests = Meter.CreateCounter<long>("overflow_requests", description: "RequestLoad calls naming an engine (overflow loads), by reason of the answer.");
    public static readonly Counter<long> Preemptions = Meter.CreateCounter<long>("preemptions", description: "Adapters evicted for higher-priority ones.");
}
