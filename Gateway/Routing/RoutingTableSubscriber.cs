using Grpc.Core;
using HybridServing.Contracts.ControlPlane;
using Microsoft.Extensions.Options;

namespace HybridServing.Gateway.Routing;

/// <summary>
/// Keeps <see cref="RoutingDatastore"/> current from the ControlPlane's <c>WatchRoutes</c> stream.
/// Every message is a whole table, so a reconnect needs no resync logic: the first message after
/// it replaces whatever was there. Backoff doubles per failed attempt and resets once a table arrives.
/// </summary>
internal sealed partial class RoutingTableSubscriber(
    AdapterRouter.AdapterRouterClient client,
    RoutingDatastore datastore,
    IOptions<GatewayOptions> options,
    TimeProvider time,
    ILogger<RoutingTableSubscriber> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value.RoutingTable;
        var delay = o.ReconnectMinDelay;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                using var call = client.WatchRoutes(new WatchRoutesRequest { Gateway = o.GatewayName }, cancellationToken: stoppingToken);
                await foreach (var table in call.ResponseStream.ReadAllAsync(stoppingToken))
                {
                    var snapshot = RoutingSnapshot.From(table, time.GetUtcNow());
                    datastore.Publish(snapshot);
                    delay = o.ReconnectMinDelay;
                    LogTable(snapshot.Version, snapshot.Engines.Count, snapshot.Adapters.Count);
                }
                LogStreamEnded();
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.Cancelled && stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (RpcException ex)
            {
                // The last table stays in use: routing on a slightly stale table beats refusing traffic.
                // The status says enough (Unavailable while the ControlPlane starts); no stack trace per retry.
                LogStreamUnavailable(ex.StatusCode, ex.Status.Detail, delay);
            }
            catch (Exception ex)
            {
                LogStreamFailed(ex, delay);
            }
            try
            {
                await Task.Delay(delay, time, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, o.ReconnectMaxDelay.Ticks));
        }
    }

    [LoggerMessage(EventId = 100, Level = LogLevel.Debug, Message = "Routing table version {Version}: {Engines} engines, {Adapters} adapters.")]
    private partial void LogTable(long version, int engines, int adapters);

    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "The ControlPlane ended the routing stream; reconnecting.")]
    private partial void LogStreamEnded();

    [LoggerMessage(EventId = 103, Level = LogLevel.Warning, Message = "Routing stream from the ControlPlane is {Status} ({Detail}); retrying in {Delay}.")]
    private partial void LogStreamUnavailable(StatusCode status, string detail, TimeSpan delay);

    [LoggerMessage(EventId = 102, Level = LogLevel.Warning, Message = "Routing stream from the ControlPlane failed; retrying in {Delay}.")]
    private partial void LogStreamFailed(Exception exception, TimeSpan delay);
}
