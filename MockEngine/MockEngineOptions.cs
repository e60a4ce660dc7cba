using HybridServing.MockEngine.Performance;

namespace HybridServing.MockEngine;

/// <summary>An adapter named on the command line with <c>--lora-modules</c>, loaded at start-up.</summary>
public sealed record LoraModuleSpec(string Name, string Path, string? BaseModelName);

/// <summary>
/// Everything the MockEngine is configured with. The first block mirrors vLLM's own flags (same
/// names, same defaults); the <c>Mock*</c> block is ours and has no vLLM counterpart.
/// Build it with <see cref="MockEngineCommandLine.Parse"/>.
/// </summary>
public sealed record MockEngineOptions
{
    // ---- vLLM's flags ----
    public required string Model { get; init; }
    /// <summary><c>--served-model-name</c>; empty means the model path is the served name.</summary>
    public IReadOnlyList<string> ServedModelNames { get; init; } = [];
    public string Host { get; init; } = "0.0.0.0";
    public int Port { get; init; } = 8000;
    public bool EnableLora { get; init; }
    public int MaxLoras { get; init; } = 1;
    /// <summary>Null means "same as max_loras", vLLM's default.</summary>
    public int? MaxCpuLoras { get; init; }
    public int MaxLoraRank { get; init; } = 16;
    public IReadOnlyList<LoraModuleSpec> LoraModules { get; init; } = [];
    /// <summary>From <c>--api-key</c>, else <c>VLLM_API_KEY</c>. Never logged.</summary>
    public string? ApiKey { get; init; }
    public int MaxNumSeqs { get; init; } = 256;
    /// <summary>Null: taken from the model (131072 for Llama 3.1, 2048 for test/tiny, else 4096).</summary>
    public int? MaxModelLen { get; init; }
    public int? MaxNumBatchedTokens { get; init; }
    public int BlockSize { get; init; } = 16;
    public double GpuMemoryUtilization { get; init; } = 0.9;
    /// <summary>From <c>VLLM_ALLOW_RUNTIME_LORA_UPDATING</c> at start-up: the load/unload routes exist only when true.</summary>
    public bool AllowRuntimeLoraUpdating { get; init; }
    /// <summary><c>--enable-sleep-mode</c>: the engine can be put to sleep (frees KV cache, offloads or drops weights).</summary>
    public bool EnableSleepMode { get; init; }
    /// <summary>From <c>VLLM_SERVER_DEV_MODE</c>: vLLM mounts <c>/sleep</c>, <c>/wake_up</c>, <c>/is_sleeping</c> only then.</summary>
    public bool ServerDevMode { get; init; }

    // ---- MockEngine's own flags (--mock-*) ----
    /// <summary><c>--mock-profile</c>: which hardware/model calibration the performance model uses (tiny for test/tiny).</summary>
    public string Profile { get; init; } = PerformanceProfile.DefaultName;
    /// <summary>
    /// <c>--mock-backend onnx</c>: tokens come from a tiny transformer (test/tiny's shapes, seeded weights) run by
    /// ONNX Runtime, with every loaded adapter's LoRA weights applied per row; the performance model still schedules.
    /// </summary>
    public bool OnnxBackend { get; init; }
    /// <summary><c>--mock-time-scale</c>: model seconds per wall-clock second (10 = ten times faster than a GPU).</summary>
    public double TimeScale { get; init; } = 1.0;
    /// <summary><c>--mock-zero-latency</c>: answer at once, bypassing the performance model (gateway benchmark).</summary>
    public bool ZeroLatency { get; init; }
    public int Seed { get; init; }
    /// <summary><c>--mock-step-jitter</c>: relative spread of step times (0..0.5), seeded by <c>--mock-seed</c>.</summary>
    public double StepJitter { get; init; }
    /// <summary><c>--mock-kv-blocks</c>: overrides the profile's KV-cache size, to provoke preemption.</summary>
    public int? KvBlocks { get; init; }
    /// <summary><c>--mock-load-error-status</c>: 400 (vLLM 0.2x main) or 500 (newer builds) for rejected adapters.</summary>
    public int LoadFailureStatus { get; init; } = 400;
    /// <summary><c>--mock-unload-keeps-slot</c>: reproduce the vLLM defect where unload does not free the slot.</summary>
    public bool UnloadKeepsSlot { get; init; }
    /// <summary><c>--mock-fail-rate</c>: fraction of inference requests answered with 500.</summary>
    public double FailRate { get; init; }
    /// <summary><c>--mock-spike-rate</c> / <c>--mock-spike-ms</c>: fraction of requests delayed by an extra latency.</summary>
    public double SpikeRate { get; init; }
    public double SpikeMilliseconds { get; init; } = 1000;
    /// <summary><c>--mock-crash-after</c>: after this many inference requests the engine dies (health 503, host stops).</summary>
    public int? CrashAfterRequests { get; init; }
    /// <summary><c>--mock-expose-loaded-metric</c>: also expose the proposed <c>vllm:lora_adapter_loaded</c>.</summary>
    public bool ExposeAdapterLoadedMetric { get; init; }

    /// <summary>The names the base model answers to; the first is "the" base name.</summary>
    public IReadOnlyList<string> BaseNames => ServedModelNames.Count > 0 ? ServedModelNames : [Model];

    public string PrimaryName => BaseNames[0];

    public int EffectiveMaxCpuLoras => MaxCpuLoras ?? MaxLoras;

    public int EffectiveMaxModelLen => MaxModelLen ?? DefaultMaxModelLen(Model, OnnxBackend);

    /// <summary>vLLM V1's default token budget per step for online serving.</summary>
    public int EffectiveMaxNumBatchedTokens => MaxNumBatchedTokens ?? Math.Max(8192, MaxNumSeqs);

    /// <summary>The ONNX backend recomputes the whole sequence every step (no KV cache), so its default context is short.</summary>
    internal const int OnnxDefaultMaxModelLen = 512;

    internal static int DefaultMaxModelLen(string model, bool onnxBackend = false) =>
        onnxBackend ? OnnxDefaultMaxModelLen
        : model.Contains("llama-3.1", StringComparison.OrdinalIgnoreCase) || model.Contains("llama-3.2", StringComparison.OrdinalIgnoreCase) ? 131072
        : model.Equals("test/tiny", StringComparison.OrdinalIgnoreCase) ? 2048
        : 4096;
}
