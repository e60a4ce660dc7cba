namespace HybridServing.MockEngine.Performance;

/// <summary>Cost of moving an adapter up one tier: a fixed latency plus size over bandwidth.</summary>
public sealed record TransferCost(double LatencySeconds, double BytesPerSecond)
{
    public double SecondsFor(long bytes) => LatencySeconds + bytes / BytesPerSecond;
}

/// <summary>
/// The calibration of the performance model: one GPU serving one base model. Every number is a
/// public figure or derived from one; the sources are cited where the default is declared.
/// A step costs <c>overhead + max(memory time, compute time) + LoRA time</c> (a roofline), plus
/// the load time of adapters it needs that are not on the GPU.
/// </summary>
public sealed record PerformanceProfile
{
    public const string DefaultName = "h100-llama3-8b";
    public const string TinyName = "tiny";

    public static IReadOnlyList<string> Names { get; } = [DefaultName, TinyName];

    public required string Name { get; init; }

    /// <summary>Scheduler, sampling and launch overhead per step, paid even by an empty-ish batch.</summary>
    public required double StepOverheadSeconds { get; init; }
    /// <summary>Bytes of base weights read once per step (decode is bound by this).</summary>
    public required long WeightBytes { get; init; }
    /// <summary>Achievable HBM bandwidth (bytes/s), already discounted from the datasheet peak.</summary>
    public required double MemoryBytesPerSecond { get; init; }
    /// <summary>FLOPs per token through the dense layers (2 × parameters).</summary>
    public required double FlopsPerToken { get; init; }
    /// <summary>Achieved dense FLOP/s (datasheet × model FLOP utilisation).</summary>
    public required double FlopsPerSecond { get; init; }
    /// <summary>KV-cache bytes per token (2 × layers × KV heads × head dim × dtype bytes).</summary>
    public required long KvBytesPerToken { get; init; }
    /// <summary>Total device memory, and what weights plus activations leave for the KV cache.</summary>
    public required long GpuMemoryBytes { get; init; }
    public required long ActivationReserveBytes { get; init; }

    /// <summary>Fixed cost of running the LoRA kernels at all in a step (shrink/expand launches per layer and module).</summary>
    public required double LoraBatchOverheadSeconds { get; init; }
    /// <summary>Extra cost per distinct adapter in the batch (its weights are read, segments grow).</summary>
    public required double LoraPerAdapterSeconds { get; init; }
    /// <summary>Cost per token per unit of rank for tokens that go through an adapter.</summary>
    public required double LoraPerTokenRankSeconds { get; init; }

    /// <summary>Adapter load tiers (docs/benchmarks.md): host → GPU, local disk → host, object store → host.</summary>
    public required TransferCost HostToGpu { get; init; }
    public required TransferCost LocalDiskToHost { get; init; }
    public required TransferCost RemoteToHost { get; init; }

    /// <summary>KV blocks the engine gets, as vLLM sizes it: (memory × utilisation − weights − activations) / block bytes.</summary>
    public int KvBlocks(int blockSize, double gpuMemoryUtilization)
    {
        var free = GpuMemoryBytes * gpuMemoryUtilization - WeightBytes - ActivationReserveBytes;
        var blocks = free / ((double)KvBytesPerToken * blockSize);
        return (int)Math.Clamp(Math.Floor(blocks), 1, int.MaxValue);
    }

    public static PerformanceProfile ByName(string name) => name switch
    {
        DefaultName => H100Llama3_8B,
        TinyName => Tiny,
        _ => throw new ArgumentException($"Unknown performance profile '{name}'. Known: {string.Join(", ", Names)}.", nameof(name)),
    };

    /// <summary>
    /// Llama-3.1-8B (BF16) on one H100 SXM 80 GB.
    /// - Weights: 8.03 B parameters × 2 bytes = 16.06 GB (model card, meta-llama/Llama-3.1-8B).
    /// - HBM3 3.35 TB/s peak (NVIDIA H100 SXM datasheet); we assume 80 % achievable → 2.68 TB/s, so a
    ///   batch-1 decode step reads weights in ≈ 6.0 ms; with ≈ 1 ms step overhead that gives the ≈ 7 ms
    ///   inter-token latency vLLM's published 8B/H100 benchmarks show at low concurrency.
    /// - Dense BF16 989 TFLOP/s (datasheet, without sparsity) at ≈ 55 % MFU → 544 TFLOP/s; at
    ///   2 × 8.03 GFLOP/token a 1,000-token prefill costs ≈ 30 ms, in line with the 30–50 ms TTFT
    ///   reported for 1k-token prompts on this pair.
    /// - KV: 2 × 32 layers × 8 KV heads × 128 × 2 bytes = 128 KiB per token (Llama-3.1-8B config.json).
    ///   With 0.9 utilisation, 16.06 GB weights and ≈ 4 GB activations/CUDA graphs, ≈ 24,700 blocks
    ///   of 16 tokens (≈ 395k tokens), close to the "GPU KV cache size" vLLM logs for this setup.
    /// - LoRA: Punica (Chen et al., MLSys 2024, arXiv:2310.18547) and S-LoRA (Sheng et al., MLSys
    ///   2024, arXiv:2311.03285) show the batched-LoRA cost is a per-step kernel overhead that grows
    ///   with the number of distinct adapters and with rank, small next to the base model. The
    ///   constants below are our estimates within that shape: 448 shrink/expand launches per step
    ///   (7 modules × 32 layers × 2) at ≈ 3 µs ≈ 1.3 ms; the LoRA FLOPs per token per rank
    ///   (2 × Σ(in+out) × 32 layers ≈ 5.2 MFLOP) at ≈ 10 % of dense efficiency ≈ 96 ns.
    /// - Load tiers: docs/benchmarks.md (host → GPU 2 ms + size / 16 GB/s, local disk 20 ms + size / 2 GB/s,
    ///   object store 500 ms + size / 200 MB/s).
    /// </summary>
    public static PerformanceProfile H100Llama3_8B { get; } = new()
    {
        Name = DefaultName,
        StepOverheadSeconds = 0.001,
        WeightBytes = 16_060_000_000,
        MemoryBytesPerSecond = 2.68e12,
        FlopsPerToken = 2 * 8.03e9,
        FlopsPerSecond = 544e12,
        KvBytesPerToken = 131_072,
        GpuMemoryBytes = 80_000_000_000,
        ActivationReserveBytes = 4_000_000_000,
        LoraBatchOverheadSeconds = 0.0013,
        LoraPerAdapterSeconds = 0.0001,
        LoraPerTokenRankSeconds = 96e-9,
        HostToGpu = new TransferCost(0.002, 16e9),
        LocalDiskToHost = new TransferCost(0.020, 2e9),
        RemoteToHost = new TransferCost(0.500, 200e6),
    };

    /// <summary>
    /// The "test/tiny" model for fast tests: same shape of costs, scaled down (≈ 1 ms per decode
    /// step) and a small KV cache so preemption is easy to provoke.
    /// </summary>
    public static PerformanceProfile Tiny { get; } = new()
    {
        Name = TinyName,
        StepOverheadSeconds = 0.0005,
        WeightBytes = 1_000_000_000,
        MemoryBytesPerSecond = 2e12,
        FlopsPerToken = 2 * 1e9,
        FlopsPerSecond = 200e12,
        KvBytesPerToken = 1_024,
        // Sized so that the default 0.9 utilisation leaves 1,000 blocks of 16 tokens.
        GpuMemoryBytes = (long)Math.Ceiling((1_000_000_000 + 1_024.0 * 16 * 1_000) / 0.9),
        ActivationReserveBytes = 0,
        LoraBatchOverheadSeconds = 0.0002,
        LoraPerAdapterSeconds = 0.00005,
        LoraPerTokenRankSeconds = 10e-9,
        HostToGpu = new TransferCost(0.002, 16e9),
        LocalDiskToHost = new TransferCost(0.020, 2e9),
        RemoteToHost = new TransferCost(0.500, 200e6),
    };
}
