using HybridServing.Autoscaler.Decisions;
using HybridServing.Autoscaler.Signals;

namespace HybridServing.Autoscaler.Actuation;

/// <summary>Changes a pool's engine count. One per pool, chosen by <c>Autoscaler:Pools:&lt;name&gt;:Actuator</c>.</summary>
internal interface IPoolActuator
{
    /// <summary>Engines serving now (awake engines, or the Deployment's replicas); throws <see cref="ActuatorException"/> when it cannot tell.</summary>
    Task<int> CurrentEnginesAsync(IReadOnlyList<EngineReading> engines, CancellationToken ct);

    /// <summary>Moves the pool towards <paramref name="decision"/>'s desired count; returns what it did, for the record.</summary>
    Task<string> ApplyAsync(ScaleDecision decision, IReadOnlyList<EngineReading> engines, CancellationToken ct);
}

/// <summary>An actuator could not read or change the pool; the message names what and why.</summary>
internal sealed class ActuatorException(string reason, string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>A Kubernetes-style reason (e.g. <c>DeploymentMissing</c>).</summary>
    public string Reason { get; } = reason;
}
