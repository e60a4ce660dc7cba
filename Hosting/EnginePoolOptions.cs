namespace HybridServing.Hosting;

/// <summary>
/// An engine pool: engines of one base model, each with an EngineSidecar next to it. The same
/// settings start MockEngines on a laptop and vLLM pods on a cluster (with <see cref="Cluster"/>).
/// </summary>
public sealed record EnginePoolOptions
{
    public const string DefaultBaseModel = "meta-llama/Llama-3.1-8B-Instruct";

    /// <summary>Engines started locally (each a MockEngine plus its sidecar).</summary>
    public int Engines { get; init; } = 3;
    public string BaseModel { get; init; } = DefaultBaseModel;
    /// <summary>vLLM's <c>--max-loras</c>: GPU LoRA slots per engine.</summary>
    public int MaxLoras { get; init; } = 4;
    /// <summary>vLLM's <c>--max-cpu-loras</c>: host-memory LoRA slots per engine.</summary>
    public int MaxCpuLoras { get; init; } = 8;
    /// <summary>The <c>pool</c> label LoraAdapters select engines by (<c>podSelector.matchLabels.pool</c>).</summary>
    public string PoolLabel { get; init; } = "default";
    /// <summary>Address every local process binds to.</summary>
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>Engine i listens on <c>EnginePortBase + i</c>.</summary>
    public int EnginePortBase { get; init; } = 8000;
    /// <summary>Sidecar i listens on <c>SidecarPortBase + i</c> (HTTP) and <c>SidecarPortBase + 10 + i</c> (gRPC).</summary>
    public int SidecarPortBase { get; init; } = 8010;
    /// <summary>Directories sidecars may load local adapters from.</summary>
    public IReadOnlyList<string> AllowedLocalRoots { get; init; } = [];
    /// <summary>Where each sidecar keeps its artifact cache (<c>{StateDirectory}/{sidecar}/cache</c>).</summary>
    public string StateDirectory { get; init; } = ".hybridserving";
    /// <summary>Engines start with vLLM's sleep mode (<c>--enable-sleep-mode</c>, dev-mode routes) so an Autoscaler can sleep and wake them.</summary>
    public bool SleepMode { get; init; }
    /// <summary>Extra MockEngine arguments (e.g. <c>--mock-time-scale 4</c>).</summary>
    public IReadOnlyList<string> ExtraEngineArgs { get; init; } = [];
    /// <summary>The pool as the Kubernetes publisher writes it.</summary>
    public ClusterEnginePool Cluster { get; init; } = new();
}

/// <summary>What the Kubernetes publisher writes for an engine pool (vLLM pods on GPU nodes).</summary>
public sealed record ClusterEnginePool
{
    public int Replicas { get; init; } = 2;
    public string EngineImage { get; init; } = "vllm/vllm-openai:v0.11.0";
    public int MaxLoras { get; init; } = 8;
    public int MaxCpuLoras { get; init; } = 64;
    public int MaxLoraRank { get; init; } = 64;
    /// <summary>Bounds the Autoscaler keeps the pool's Deployment within (when the model has an Autoscaler).</summary>
    public int MinReplicas { get; init; } = 1;
    public int MaxReplicas { get; init; } = 8;
}
