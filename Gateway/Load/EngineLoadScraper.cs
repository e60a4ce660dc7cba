using HybridServing.Contracts.Metrics;
using HybridServing.Gateway.Routing;
using Microsoft.Extensions.Options;

namespace HybridServing.Gateway.Load;

/// <summary>
/// Reads every engine's <c>/metrics</c> on a fixed interval (50 ms by default, so the load the
/// picker sees is never older than the 100 ms where no sidecar stream is available).
/// An engine whose previous scrape has not finished is skipped for that tick rather than piled on.
/// Connection failures feed passive health, which makes the scrape an active health check too.
/// </summary>
internal sealed partial class EngineLoadScraper(
    RoutingDatastore routes,
    EngineLoadBoard board,
    Health.PassiveHealth health,
    IOptions<GatewayOptions> options,
    TimeProvider time,
    ILogger<EngineLoadScraper> logger) : BackgroundService
{
    private readonly HttpClient _http = new(new SocketsHttpHandler
    {
        UseProxy = false,
        UseCookies = false,
        AllowAutoRedirect = false,
        ConnectTimeout = TimeSpan.FromSeconds(1),
        PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1),
    });
    private readonly Dictionary<string, Task> _running = new(StringComparer.Ordinal);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value.Load;
        if (o.ScrapeInterval <= TimeSpan.Zero) return;
        _http.Timeout = o.ScrapeTimeout;
        using var timer = new PeriodicTimer(o.ScrapeInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                var snapshot = routes.Current;
                foreach (var done in _running.Where(r => r.Value.IsCompleted).Select(r => r.Key).ToList()) _running.Remove(done);
                foreach (var engine in snapshot.Engines.Values)
                {
                    if (!engine.Healthy || _running.ContainsKey(engine.Name)) continue;
                    _running[engine.Name] = ScrapeAsync(engine, stoppingToken);
                }
                board.RetainOnly(snapshot.Engines.ContainsKey);
            }
        }
        catch (OperationCanceledException)
        {
        }
        await Task.WhenAll(_running.Values);
    }

    private async Task ScrapeAsync(EngineRoute engine, CancellationToken cancellationToken)
    {
        try
        {
            var text = await _http.GetStringAsync(new Uri(engine.Url, "/metrics"), cancellationToken);
            board.Record(engine.Name, new ScrapedLoad(EngineLoadSnapshot.From(PrometheusText.Parse(text), EngineMetricNames.Vllm), time.GetUtcNow()));
            health.ReportSuccess(engine.Name);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            // The scrape doubles as an active health probe: an engine that refuses connections is
            // ejected before a client request has to find out. The last good reading ages out in the
            // picker (MaxLoadAge).
            if (ex is HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError }) health.ReportFailure(engine.Name);
            LogScrapeFailed(engine.Name, ex.Message);
        }
    }

    public override void Dispose()
    {
        _http.Dispose();
        base.Dispose();
    }

    [LoggerMessage(EventId = 200, Level = LogLevel.Debug, Message = "Scraping /metrics of engine {Engine} failed: {Reason}")]
    private partial void LogScrapeFailed(string engine, string reason);
}
