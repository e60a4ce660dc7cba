using HybridServing.EngineSidecar.Reconciliation;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace HybridServing.EngineSidecar.Api;

/// <summary>Ready when the engine answers /health and one reconcile pass has completed. Feeds both the HTTP
/// <c>/health</c> endpoint and gRPC health checking.</summary>
internal sealed class EngineReadinessCheck(EngineReconciler reconciler) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(
            !reconciler.EngineHealthy ? HealthCheckResult.Unhealthy("The engine does not answer /health with 200.")
            : !reconciler.Ready ? HealthCheckResult.Degraded("The first reconcile pass has not completed yet.")
            : HealthCheckResult.Healthy());
}
