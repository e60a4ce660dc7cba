using System.Net;
using HybridServing.Autoscaler.Decisions;
using HybridServing.Autoscaler.Signals;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace HybridServing.Autoscaler.Actuation;

/// <summary>
/// Kubernetes: reads and writes the pool Deployment's <c>scale</c> subresource. A write carries the
/// resourceVersion it read, so a concurrent writer (kubectl scale, another controller) makes it fail
/// with 409; the actuator then re-reads and retries instead of overwriting blindly, and gives up after
/// a few conflicts (the next tick decides again on fresh data). A missing Deployment is reported as
/// <c>DeploymentMissing</c>, never created.
/// </summary>
internal sealed class DeploymentScaleActuator(string poolName, PoolOptions pool, IKubernetes kubernetes) : IPoolActuator
{
    public const int MaxConflictRetries = 3;

    private string Namespace => pool.DeploymentNamespace!;
    private string Name => pool.DeploymentName!;

    public async Task<int> CurrentEnginesAsync(IReadOnlyList<EngineReading> engines, CancellationToken ct) =>
        (await ReadScaleAsync(ct)).Spec?.Replicas ?? 0;

    public async Task<string> ApplyAsync(ScaleDecision decision, IReadOnlyList<EngineReading> engines, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            var scale = await ReadScaleAsync(ct);
            var current = scale.Spec?.Replicas ?? 0;
            if (current == decision.Desired) return $"deployment {Namespace}/{Name} already at {current} replicas";
            scale.Spec ??= new V1ScaleSpec();
            scale.Spec.Replicas = decision.Desired;
            try
            {
                await kubernetes.AppsV1.ReplaceNamespacedDeploymentScaleAsync(scale, Name, Namespace, cancellationToken: ct);
                return attempt == 1
                    ? $"scaled deployment {Namespace}/{Name} from {current} to {decision.Desired} replicas"
                    : $"scaled deployment {Namespace}/{Name} from {current} to {decision.Desired} replicas after {attempt - 1} conflicting write(s)";
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict)
            {
                if (attempt > MaxConflictRetries)
                    throw new ActuatorException("ScaleConflict",
                        $"deployment {Namespace}/{Name}: scale changed under us {attempt} times in a row (another writer); retrying next tick", e);
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
            {
                throw Missing(e);
            }
        }
    }

    private async Task<V1Scale> ReadScaleAsync(CancellationToken ct)
    {
        try { return await kubernetes.AppsV1.ReadNamespacedDeploymentScaleAsync(Name, Namespace, cancellationToken: ct); }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound) { throw Missing(e); }
        catch (HttpOperationException e)
        {
            throw new ActuatorException("ScaleUnavailable", $"deployment {Namespace}/{Name} scale: HTTP {(int)e.Response.StatusCode} {e.Response.Content}", e);
        }
        catch (HttpRequestException e)
        {
            throw new ActuatorException("ScaleUnavailable", $"deployment {Namespace}/{Name} scale: {e.Message}", e);
        }
    }

    private ActuatorException Missing(Exception e) =>
        new("DeploymentMissing", $"deployment {Namespace}/{Name} not found: create the engine pool's Deployment or fix Autoscaler:Pools:{poolName}:DeploymentName", e);
}
