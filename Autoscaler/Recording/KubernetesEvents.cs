using System.Globalization;
using HybridServing.Autoscaler.Decisions;
using k8s;
using k8s.Models;

namespace HybridServing.Autoscaler.Recording;

/// <summary>
/// Writes a core/v1 Event on the pool's Deployment when a decision changes the count, when the reason
/// changes, or when acting fails (also for a missing Deployment: the Event names it, so
/// <c>kubectl get events</c> shows why nothing scales). Steady ticks write nothing.
/// </summary>
internal sealed partial class KubernetesEvents(IKubernetes kubernetes, TimeProvider time, ILogger<KubernetesEvents> logger)
{
    public const string Component = "hybridserving-autoscaler";
    private readonly Dictionary<string, string> _lastReason = new(StringComparer.Ordinal);

    public async Task RecordAsync(PoolOptions pool, ScaleDecision d, string action, ActuationFailure? failure, CancellationToken ct)
    {
        var reason = failure?.Reason ?? d.Reason;
        var key = d.Pool;
        var changed = d.Changes || failure is not null || !_lastReason.TryGetValue(key, out var last) || last != reason;
        _lastReason[key] = reason;
        if (!changed) return;
        var now = time.GetUtcNow().UtcDateTime;
        var message = failure?.Message
            ?? string.Create(CultureInfo.InvariantCulture, $"{d.Current} → {d.Desired} engines ({d.Mode}): {d.Message}; {action}");
        var ev = new Corev1Event
        {
            Metadata = new V1ObjectMeta { GenerateName = pool.DeploymentName + ".", NamespaceProperty = pool.DeploymentNamespace },
            InvolvedObject = new V1ObjectReference { ApiVersion = "apps/v1", Kind = "Deployment", Name = pool.DeploymentName, NamespaceProperty = pool.DeploymentNamespace },
            Reason = reason,
            Message = message.Length > 1024 ? message[..1024] : message,
            Type = failure is null ? "Normal" : "Warning",
            Source = new V1EventSource { Component = Component },
            ReportingComponent = Component,
            FirstTimestamp = now,
            LastTimestamp = now,
            Count = 1,
        };
        try { await kubernetes.CoreV1.CreateNamespacedEventAsync(ev, pool.DeploymentNamespace, cancellationToken: ct); }
        catch (Exception e) when (e is k8s.Autorest.HttpOperationException or HttpRequestException && !ct.IsCancellationRequested)
        {
            LogEventFailed(logger, d.Pool, e.Message);
        }
    }

    [LoggerMessage(EventId = 10, Level = LogLevel.Warning, Message = "Pool {Pool}: could not write the Kubernetes Event: {Reason}")]
    private static partial void LogEventFailed(ILogger logger, string pool, string reason);
}
