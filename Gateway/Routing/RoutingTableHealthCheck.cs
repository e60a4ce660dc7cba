using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace HybridServing.Gateway.Routing;

/// <summary>The gateway is not ready until it has a routing table: before that it would 404 every model.</summary>
internal sealed class RoutingTableHealthCheck(RoutingDatastore datastore) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(datastore.Synced
            ? HealthCheckResult.Healthy($"routing table version {datastore.Current.Version}")
            : HealthCheckResult.Unhealthy("no routing table received from the ControlPlane yet"));
}
