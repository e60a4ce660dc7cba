using HybridServing.EngineSidecar.Reconciliation;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace HybridServing.EngineSidecar.Api;

/// <summary>Ready when the engine answers /health and one reconcile pass has completed. Feeds both the HTTP
/// <c>/health</c> endpoint and gRPC health checking. An adapter refused for a reason retrying cannot fix
/// (PathNotAllowed, InvalidSource, ...) makes it Degraded (still serving), with the refusal as description.</summary>
internal sealed class EngineReadinessCheck(EngineReconciler reconciler, AdapterStateStore store) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (!reconciler.EngineHealthy) return Task.FromResult(HealthCheckResult.Unhealthy("The engine does not answer /health with 200."));
        if (!reconciler.Ready) return Task.FromResult(HealthCheckResult.Degraded("The first reconcile pass has not completed yet."));
        var refused = store.List().Where(a => a.Phase == Contracts.Sidecar.AdapterPhase.Failed && Artifacts.FailureReasons.IsPermanent(a.Reason)).ToList();
        return Task.FromResult(refused.Count == 0 ? HealthCheckResult.Healthy()
            : HealthCheckResult.Degraded(string.Join(" ", refused.Select(a => $"Adapter {a.Name} refused ({a.Reason}): {a.Message}"))));
    }
}
