namespace HybridServing.Autoscaler.Decisions;

/// <summary>
/// The ControlPlane's and engines' view of LoRA pressure on a pool: the signal a generic autoscaler
/// lacks, because a pool can be bound by its adapter slots while its GPUs are idle.
/// </summary>
/// <param name="AdaptersShortOfReplicas">Adapters the placement could not give their minimum replicas (ControlPlane shortfalls).</param>
/// <param name="OverflowRefusals">Overflow loads refused since the previous observation (the gateway's overflow outcome counter, delta).</param>
/// <param name="SlotsTotal">GPU LoRA slots across the pool's serving engines (sum of max_lora).</param>
/// <param name="SlotsOccupied">Slots holding a running adapter (distinct running adapters per engine, summed).</param>
/// <param name="WaitingLoraRequests">Adapters waiting for a slot (waiting_lora_adapters, summed).</param>
public sealed record LoraPressure(int AdaptersShortOfReplicas, long OverflowRefusals, int SlotsTotal, int SlotsOccupied, int WaitingLoraRequests)
{
    public static readonly LoraPressure None = new(0, 0, 0, 0, 0);

    /// <summary>Adapters short of replicas, refused overflows, or every slot busy with adapters waiting.</summary>
    public bool SlotBound => AdaptersShortOfReplicas > 0 || OverflowRefusals > 0
        || (SlotsTotal > 0 && SlotsOccupied >= SlotsTotal && WaitingLoraRequests > 0);
}

/// <summary>One observation of a pool, as the signal collector assembled it.</summary>
public sealed record PoolSignals
{
    public required DateTimeOffset ObservedAt { get; init; }
    /// <summary>Engines serving now: awake engines on the laptop, the Deployment's replicas on Kubernetes.</summary>
    public required int CurrentEngines { get; init; }
    /// <summary>Requests running on the serving engines (vllm:num_requests_running, summed).</summary>
    public double Running { get; init; }
    /// <summary>Requests queued on the serving engines (vllm:num_requests_waiting, summed).</summary>
    public double Waiting { get; init; }
    /// <summary>Highest KV-cache usage among the serving engines (0..1); recorded, not scaled on.</summary>
    public double MaxKvCacheUsage { get; init; }
    /// <summary>Requests the gateways hold because no awake engine can take them (the activator signal).</summary>
    public double HeldRequests { get; init; }
    public LoraPressure Lora { get; init; } = LoraPressure.None;
    /// <summary>Sources that did not answer; any makes the observation incomplete and freezes the decision.</summary>
    public IReadOnlyList<string> Missing { get; init; } = [];

    /// <summary>The load the KPA windows average: everything in or waiting for the pool.</summary>
    public double Concurrency => Running + Waiting + HeldRequests;
}
