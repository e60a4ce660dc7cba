using System.Diagnostics;
using System.Diagnostics.Metrics;
using HybridServing.Gateway.ColdStarts;

namespace HybridServing.Gateway.Observability;

/// <summary>
/// The gateway's one ActivitySource and one Meter (<c>HybridServing.Gateway</c>). prometheus-net
/// publishes the Meter's instruments on <c>/metrics</c>; OpenTelemetry exports both over OTLP.
/// Instrument names are short because exporters prefix the meter name: Prometheus sees
/// <c>hybridserving_gateway_requests</c>, <c>hybridserving_gateway_ttft</c>, ...
/// Label values are bounded: unknown models are recorded as "unknown", never as the raw input.
/// </summary>
internal sealed class GatewayTelemetry : IDisposable
{
    public const string Name = "HybridServing.Gateway";

    public static readonly ActivitySource ActivitySource = new(Name);

    private readonly Meter _meter;

    public GatewayTelemetry(IMeterFactory meters)
    {
        _meter = meters.Create(Name);
        Requests = _meter.CreateCounter<long>("requests", "{request}", "Inference requests by model, adapter, tenant and status.");
        TimeToFirstByte = _meter.CreateHistogram<double>("ttft", "s", "Time from request arrival to the first response byte (first token when streaming).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });
        Duration = _meter.CreateHistogram<double>("request.duration", "s", "End-to-end request time.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });
        Decisions = _meter.CreateCounter<long>("routing.decisions", "{decision}", "Routing decisions by policy and reason.");
        HeldRequests = _meter.CreateUpDownCounter<long>("held_requests", "{request}",
            "Requests held because every engine that could serve them is asleep (the autoscaler wakes one on this signal).");
        ColdStarts = _meter.CreateCounter<long>("cold_starts", "{cold_start}", "Requests that found their adapter loaded nowhere, by outcome.");
        ColdStartWait = _meter.CreateHistogram<double>("cold_start.wait", "s", "How long requests waited for a cold adapter.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });
        Overflows = _meter.CreateCounter<long>("overflows", "{overflow}", "Requests whose adapter's holders were all slot-bound and that tried an overflow load, by outcome.");
        OverflowWait = _meter.CreateHistogram<double>("overflow.wait", "s", "How long requests waited for an overflow load (served there or not).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });
        Tokens = _meter.CreateCounter<long>("tokens", "{token}", "Prompt and completion tokens engines reported, by model, tenant and kind.");
        Retries = _meter.CreateCounter<long>("retries", "{retry}", "Requests retried on another engine: connection failed (connect-failed), the engine died before answering (engine-dropped), the engine no longer had the adapter (adapter-missing) or answered 503 (engine-unavailable).");
    }

    private static readonly double[] LatencyBuckets = [.001, .005, .01, .02, .04, .06, .08, .1, .25, .5, .75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];

    public Counter<long> Requests { get; }
    public Histogram<double> TimeToFirstByte { get; }
    public Histogram<double> Duration { get; }
    public Counter<long> Decisions { get; }
    public UpDownCounter<long> HeldRequests { get; }
    public Counter<long> ColdStarts { get; }
    public Histogram<double> ColdStartWait { get; }
    public Counter<long> Overflows { get; }
    public Histogram<double> OverflowWait { get; }
    public Counter<long> Retries { get; }
    public Counter<long> Tokens { get; }

    /// <summary>
    /// Records zero for every overflow outcome, so <c>/metrics</c> carries the series (and the dashboard's
    /// overflow panel and <c>rate()</c> have a baseline) before the first overflow happens. Called once the
    /// app has started, when the metrics bridge is listening.
    /// </summary>
    public void StartSeriesAtZero()
    {
        foreach (var outcome in Enum.GetValues<OverflowOutcome>())
            Overflows.Add(0, new KeyValuePair<string, object?>("outcome", OverflowCoordinator.OutcomeName(outcome)));
    }

    public void Dispose() => _meter.Dispose();

}
