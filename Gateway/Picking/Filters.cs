using HybridServing.Contracts.ControlPlane;

namespace HybridServing.Gateway.Picking;

/// <summary>
/// Keeps engines that serve the base model and, for an adapter, have it LOADED. Hard: the gateway
/// never forwards to an engine that does not hold the adapter, whatever the policy.
/// </summary>
internal sealed class ServesModelFilter : IEndpointFilter
{
    public const string FilterName = "serves-model";
    public string Name => FilterName;
    public bool IsSoft => false;

    public bool Keep(PickRequest request, Candidate candidate) =>
        candidate.Engine.BaseModels.Contains(request.Model.BaseModel) && candidate.Residency == Residency.Loaded;
}

/// <summary>Keeps engines the ControlPlane reports healthy and passive health has not ejected.</summary>
internal sealed class HealthyFilter : IEndpointFilter
{
    public string Name => "healthy";
    public bool IsSoft => false;
    public bool Keep(PickRequest request, Candidate candidate) => candidate.Engine.Healthy && !candidate.Ejected;
}

/// <summary>Drops engines in sleep mode (their <c>vllm:engine_sleep_state</c> says so): they refuse inference until woken.</summary>
internal sealed class AwakeFilter : IEndpointFilter
{
    public const string FilterName = "awake";
    public string Name => FilterName;
    public bool IsSoft => false;
    public bool Keep(PickRequest request, Candidate candidate) => !candidate.Asleep;
}

/// <summary>
/// Drops engines the ControlPlane is draining for scale-down. Soft: while an adapter is LOADED only on a
/// draining engine (its new replica still loading), the request still goes there rather than failing.
/// </summary>
internal sealed class NotDrainingFilter : IEndpointFilter
{
    public string Name => "not-draining";
    public bool IsSoft => true;
    public bool Keep(PickRequest request, Candidate candidate) => !candidate.Engine.Draining;
}

/// <summary>Drops engines this request already failed on (retry goes elsewhere).</summary>
internal sealed class NotTriedFilter : IEndpointFilter
{
    public string Name => "not-tried";
    public bool IsSoft => false;
    public bool Keep(PickRequest request, Candidate candidate) => !request.Excluded.Contains(candidate.Name);
}

/// <summary>
/// Drops saturated engines (queue or KV cache over the thresholds). Soft: when every holder is
/// saturated the request still goes to one of them (the engine queues it) rather than failing.
/// </summary>
internal sealed class NotSaturatedFilter(int queueDepth, double kvCacheUsage) : IEndpointFilter
{
    public string Name => "not-saturated";
    public bool IsSoft => true;

    public bool Keep(PickRequest request, Candidate candidate) =>
        candidate.Load is not { } load || (load.Waiting < queueDepth && load.KvCacheUsage < kvCacheUsage);
}
