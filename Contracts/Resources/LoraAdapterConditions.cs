namespace HybridServing.Contracts.Resources;

/// <summary>Condition types on a LoraAdapter's status (Kubernetes convention: positive polarity except Degraded).</summary>
public static class LoraAdapterConditionTypes
{
    /// <summary>True when every adapter that should be loaded is loaded on at least its minimum number of engines.</summary>
    public const string Ready = "Ready";
    /// <summary>True when the placement found engines for every adapter that should be placed.</summary>
    public const string Scheduled = "Scheduled";
    /// <summary>True when every placed adapter is loaded on every engine it was placed on.</summary>
    public const string Loaded = "Loaded";
    /// <summary>True when something is wrong but the resource still serves (some adapters or replicas failing).</summary>
    public const string Degraded = "Degraded";
}

/// <summary>Machine-readable reasons used in conditions and in <c>failedAdapters[].reason</c>.</summary>
public static class LoraAdapterReasons
{
    /// <summary>The spec is invalid; the message names the field. Nothing is placed.</summary>
    public const string InvalidSpec = "InvalidSpec";
    /// <summary>No engine serves the base model and matches the pod selector.</summary>
    public const string NoCompatibleEngine = "NoCompatibleEngine";
    /// <summary>Engines match, but the adapter exceeds every one's max_lora_rank or adapter memory budget.</summary>
    public const string AdapterIncompatible = "AdapterIncompatible";
    /// <summary>Compatible engines exist but have no free adapter slot (and preemption is not possible).</summary>
    public const string InsufficientCapacity = "InsufficientCapacity";
    /// <summary>A higher-priority adapter took the slot.</summary>
    public const string Preempted = "Preempted";
    /// <summary>The source could not be listed or read; retried with backoff.</summary>
    public const string SourceUnavailable = "SourceUnavailable";
    /// <summary>The source needs credentials that are not available.</summary>
    public const string CredentialsMissing = "CredentialsMissing";
    /// <summary>An adapter's files are not a valid PEFT LoRA adapter.</summary>
    public const string InvalidAdapter = "InvalidAdapter";
    /// <summary>An explicitly listed adapter does not exist in the source.</summary>
    public const string AdapterNotFound = "AdapterNotFound";
    /// <summary>An older LoraAdapter already exposes this adapter name.</summary>
    public const string NameConflict = "NameConflict";
    /// <summary>The engine (through its sidecar) failed to load the adapter; retried with backoff.</summary>
    public const string LoadFailed = "LoadFailed";
    /// <summary>Everything that should be loaded is loaded.</summary>
    public const string AllLoaded = "AllLoaded";
    /// <summary>Every adapter has engines assigned.</summary>
    public const string AllScheduled = "AllScheduled";
    /// <summary>Adapters are placed and loading.</summary>
    public const string Loading = "Loading";
    /// <summary>Some adapters are loaded, others are not.</summary>
    public const string PartiallyLoaded = "PartiallyLoaded";
    /// <summary>No adapter matched the source's list, pattern or prefix.</summary>
    public const string NoAdapters = "NoAdapters";
    /// <summary>Nothing is wrong.</summary>
    public const string Healthy = "Healthy";
    /// <summary>The adapters load only when a gateway asks for them (<c>loadOnStartup: false</c>).</summary>
    public const string OnDemand = "OnDemand";
}
