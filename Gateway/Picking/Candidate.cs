using HybridServing.Contracts.ControlPlane;
using HybridServing.Contracts.Metrics;
using HybridServing.Gateway.Routing;

namespace HybridServing.Gateway.Picking;

/// <summary>
/// One engine as the picker sees it for one request: a plain value built from the routing and load
/// snapshots, so every policy is a pure function of its inputs.
/// </summary>
/// <param name="Residency">The requested adapter's residency there (Loaded for base-model requests, Unspecified when absent).</param>
/// <param name="Load">Scraped engine load, or null when unknown or too old.</param>
/// <param name="InFlight">Requests this gateway has in flight to the engine.</param>
/// <param name="Ejected">Passive health has taken the engine out for now.</param>
internal sealed record Candidate(EngineRoute Engine, Residency Residency, EngineLoadSnapshot? Load, int InFlight, bool Ejected)
{
    public string Name => Engine.Name;

    /// <summary>GPU slots: the engine's own report wins over the routing table's figure.</summary>
    public int MaxLoras => Load?.MaxLoras ?? Engine.MaxLoras;

    public bool AdapterRunning(string adapter) => Load is not null && Load.RunningAdapters.Contains(adapter, StringComparer.Ordinal);

    public bool AdapterWaiting(string adapter) => Load is not null && Load.WaitingAdapters.Contains(adapter, StringComparer.Ordinal);

    /// <summary>A GPU slot is free when fewer distinct adapters are running than slots exist.</summary>
    public bool HasFreeSlot => Load is not null && MaxLoras > 0 && Load.RunningAdapters.Count < MaxLoras;

    /// <summary>The engine's metrics say it is in vLLM's sleep mode: it answers inference 503.</summary>
    public bool Asleep => Load is { Sleeping: true };
}

/// <summary>The request being routed plus every engine known for its base model.</summary>
/// <param name="Excluded">Engines already tried for this request (retry on another engine).</param>
internal sealed record PickRequest(ResolvedModel Model, IReadOnlyList<Candidate> Candidates, IReadOnlySet<string> Excluded)
{
    public string? AdapterName => Model.Adapter?.Name;
}

/// <summary>The outcome: the engine (null = none may serve) and why, for metrics and spans.</summary>
internal sealed record PickDecision(Candidate? Chosen, string Reason, double Score);

/// <summary>Reasons recorded with each routing decision.</summary>
internal static class PickReasons
{
    /// <summary>No engine holds the model (adapter not loaded anywhere, or base model unserved).</summary>
    public const string NotLoaded = "not-loaded";
    /// <summary>Engines hold it, but all are unhealthy, ejected or already tried.</summary>
    public const string NoHealthyEngine = "no-healthy-engine";
    /// <summary>Engines hold it, but every healthy one is in sleep mode (the gateway holds the request while the autoscaler wakes one).</summary>
    public const string AllAsleep = "all-asleep";
    /// <summary>Every holder is saturated; the least bad one is used instead of failing.</summary>
    public const string AllSaturated = "all-saturated";
    public const string BaseModel = "base-model";
    /// <summary>The adapter is running on the chosen engine's GPU now.</summary>
    public const string GpuResident = "gpu-resident";
    /// <summary>The adapter is loaded there and a GPU slot is free.</summary>
    public const string FreeSlot = "free-slot";
    /// <summary>The adapter is loaded (host memory) but the engine must swap it in.</summary>
    public const string Loaded = "loaded";
    /// <summary>Every holder's GPU slots were taken: the adapter was loaded on the chosen engine for this request (overflow load).</summary>
    public const string Overflow = "overflow";
}
