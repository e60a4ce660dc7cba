using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Prometheus;

namespace HybridServing.ServiceDefaults;

/// <summary>
/// The <c>http_*</c> request series on <c>/metrics</c>, kept under the names prometheus-net's HTTP middleware uses
/// (<c>http_requests_received_total</c> and <c>http_request_duration_seconds</c> by code, method and endpoint route
/// pattern; <c>http_requests_in_progress</c>), measured by one middleware that pays per request a timestamp, a
/// gauge move and one cached-series lookup. prometheus-net's three middlewares resolved their labels (route data,
/// controller and action) on every request, which in a proxy cost more CPU than the proxy's own routing.
/// </summary>
internal sealed class HttpRequestMetrics
{
    private static readonly string[] Labels = ["code", "method", "endpoint"];

    private readonly Counter _received;
    private readonly Histogram _duration;
    private readonly Gauge _inProgress;
    private readonly ConcurrentDictionary<(string Method, int Code, string Endpoint), (Counter.Child Received, Histogram.Child Duration)> _series = new();

    /// <param name="exemplars">Attach the current trace to observations (only worth it when traces are exported).</param>
    public HttpRequestMetrics(bool exemplars)
    {
        var behavior = exemplars ? null : ExemplarBehavior.NoExemplars();
        _received = Metrics.CreateCounter("http_requests_received_total", "Requests the server answered, by status code, method and endpoint route pattern.",
            new CounterConfiguration { LabelNames = Labels, ExemplarBehavior = behavior });
        _duration = Metrics.CreateHistogram("http_request_duration_seconds", "Time from the request's arrival to the end of its response, by status code, method and endpoint route pattern.",
            new HistogramConfiguration { LabelNames = Labels, ExemplarBehavior = behavior, Buckets = Histogram.ExponentialBuckets(0.001, 2, 16) });
        _inProgress = Metrics.CreateGauge("http_requests_in_progress", "Requests being served now.");
    }

    public async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var started = Stopwatch.GetTimestamp();
        _inProgress.Inc();
        try
        {
            await next(context);
        }
        finally
        {
            _inProgress.Dec();
            var endpoint = (context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "";
            var series = _series.GetOrAdd((context.Request.Method, context.Response.StatusCode, endpoint), static (key, self) => (
                self._received.WithLabels(key.Code.ToString(CultureInfo.InvariantCulture), key.Method, key.Endpoint),
                self._duration.WithLabels(key.Code.ToString(CultureInfo.InvariantCulture), key.Method, key.Endpoint)), this);
            series.Received.Inc();
            series.Duration.Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
    }
}
