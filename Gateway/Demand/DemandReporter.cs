using HybridServing.Contracts.ControlPlane;
using Microsoft.Extensions.Options;

namespace HybridServing.Gateway.Demand;

/// <summary>
/// Every <c>Gateway:Demand:ReportInterval</c>, sends the per-adapter request counts since the last
/// report to the ControlPlane (<c>ReportDemand</c>), which turns them into rates for placement. A
/// failed report is dropped, not retried: demand is a hint, and the next report carries on.
/// </summary>
internal sealed partial class DemandReporter(
    DemandCounter counter,
    AdapterRouter.AdapterRouterClient client,
    IOptions<GatewayOptions> options,
    TimeProvider time,
    ILogger<DemandReporter> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = options.Value.Demand.ReportInterval;
        if (interval <= TimeSpan.Zero) return;
        var gateway = options.Value.RoutingTable.GatewayName;
        using var timer = new PeriodicTimer(interval, time);
        var last = time.GetTimestamp();
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                var window = time.GetElapsedTime(last);
                last = time.GetTimestamp();
                var counts = counter.Drain();
                if (counts.Count == 0) continue;
                var report = new DemandReport { Gateway = gateway, WindowSeconds = window.TotalSeconds };
                foreach (var (adapter, requests) in counts) report.Adapters.Add(new AdapterDemandSample { Name = adapter, Requests = requests });
                try
                {
                    await client.ReportDemandAsync(report, deadline: DateTime.UtcNow + interval, cancellationToken: stoppingToken);
                }
                catch (Exception e) when (!stoppingToken.IsCancellationRequested)
                {
                    LogReportFailed(counts.Count, e.Message);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    [LoggerMessage(EventId = 900, Level = LogLevel.Debug, Message = "Demand report for {Adapters} adapter(s) dropped: {Reason}")]
    private partial void LogReportFailed(int adapters, string reason);
}
